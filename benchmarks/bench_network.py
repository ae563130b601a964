"""Networks with every feature map kept: convtool vs PyTorch eager and onnxruntime.

Run:  python benchmarks/bench_network.py [--threads 2] [--repeat 7] [--json [FILE]]
                                         [--no-layers] [--no-memory]

Targets (issue 8, item 7), each a ratio from one run with interleaved repeats
and the same thread count on every side (Numba threads for convtool,
``torch.set_num_threads``, onnxruntime ``intra_op_num_threads``):

* **VGG-16 blocks 1-2** on a 224x224x3 image (conv64, relu, conv64, relu,
  maxpool, conv128, relu, conv128, relu, maxpool; seeded He weights, zero-pad
  1): ``convtool.network.feature_maps`` against the same layers in PyTorch
  eager, every map kept on both sides: ratio <= 1.0.
* **ResNet-18** (torchvision's shapes, batch norm folded into the convolutions
  as both of torch.onnx.export's exporters fold it, seeded weights) built with
  the ``onnx`` helper API at 224x224x3: ``convtool.feature_maps(image,
  "resnet18.onnx")`` against onnxruntime asked for every node output:
  ratio <= 1.5. Until convtool can read ONNX files that row says so, and the
  ResNet-18 convolutions run one by one through ``conv2d`` against
  ``torch.nn.functional.conv2d`` instead.

The network rows are timed twice: interleaved (convtool, peer, convtool, ...:
both sides see the same drift of a shared machine; the ratio the targets are
about) and "alone" (all of one side's runs back to back, then the other's:
each side keeps its caches and its threads awake, as a user running only
one of them would).

Also printed: every convolution of both networks alone (``conv2d`` with the
method ``auto`` picks, against torch), the first call of each side (Numba
cache load or compile included), the largest difference from the peer
(checked: a disagreement beyond 1e-4 of the largest value stops the script),
and the peak memory of ResNet-18 with all maps kept (a fresh subprocess that
loads the model, runs it once to load the kernels, then once more: the
process's peak RSS, Python and numpy included, and tracemalloc's peak over the
second run, which counts the arrays it allocates).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

VGG_SPEC = (
    "conv(random:64,size=3,pad=1,seed=1) relu conv(random:64,size=3,pad=1,seed=2) relu "
    "pool(max,2) "
    "conv(random:128,size=3,pad=1,seed=3) relu conv(random:128,size=3,pad=1,seed=4) relu "
    "pool(max,2)"
)

#: ResNet-18 stages: (channels, first stride).
RESNET_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))


#: Runs of each side before timing. A fresh process runs its first networks on
#: numpy and BLAS (rent or buy: the run costs less than loading Numba) and moves
#: to the compiled kernels after about ten; the targets are about a process that
#: keeps running (the first run is its own row: ``first``).
WARM_UP_RUNS = 12


def warm_up(*fns) -> list[float]:
    """Run each function WARM_UP_RUNS times; return the time of each one's first call."""
    firsts = []
    for fn in fns:
        t0 = time.perf_counter()
        fn()
        firsts.append(time.perf_counter() - t0)
        for _ in range(WARM_UP_RUNS - 1):
            fn()
    return firsts


# ------------------------------------------------------------------ VGG-16 blocks


def vgg_torch(layers, threads: int):
    """PyTorch eager forward of the planned VGG layers, returning every map."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    params = [
        (torch.from_numpy(np.ascontiguousarray(layer.weight)), torch.from_numpy(layer.bias))
        for layer in layers
        if layer.kind == "conv"
    ]

    def run(x_chw):
        maps = []
        x = torch.from_numpy(x_chw)[None]
        with torch.no_grad():
            convs = iter(params)
            for layer in layers:
                if layer.kind == "conv":
                    w, b = next(convs)
                    x = F.conv2d(x, w, b, padding=1)
                elif layer.kind == "relu":
                    x = F.relu(x)
                else:
                    x = F.max_pool2d(x, 2)
                maps.append(x)
        return maps

    return run


# ---------------------------------------------------------------------- ResNet-18


def resnet18_convs() -> list[tuple[str, int, int, int, int, int, int]]:
    """(name, C, M, K, stride, pad, input side) of every ResNet-18 convolution at 224."""
    convs = [("conv1 7x7/2", 3, 64, 7, 2, 3, 224)]
    c, side = 64, 56
    for i, (m, s) in enumerate(RESNET_STAGES, start=1):
        for blk in range(2):
            stride = s if blk == 0 else 1
            out_side = side // stride
            tag = f"layer{i}.{blk}"
            convs.append((f"{tag}.conv1 3x3/{stride}", c, m, 3, stride, 1, side))
            convs.append((f"{tag}.conv2 3x3/1", m, m, 3, 1, 1, out_side))
            if stride != 1 or c != m:
                convs.append((f"{tag}.down 1x1/{stride}", c, m, 1, stride, 0, side))
            c, side = m, out_side
    return convs


def build_resnet18(path: Path, seed: int = 0) -> int:
    """Write a ResNet-18-shaped ONNX model (opset 13, batch norm folded); return its node count.

    Node names follow torchvision's modules (``layer2.0.conv1``...). Every
    node's output is also a graph output, so onnxruntime returns every map.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    def conv(name, x, c, m, k, stride, pad, relu):
        fan_in = c * k * k
        w = rng.standard_normal((m, c, k, k)).astype(np.float32) * np.float32(np.sqrt(2 / fan_in))
        b = rng.standard_normal(m).astype(np.float32) * np.float32(0.1)
        nodes.append(
            helper.make_node(
                "Conv", [x, const(f"{name}.weight", w), const(f"{name}.bias", b)], [name],
                name=name, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4,
            )
        )  # fmt: skip
        if not relu:
            return name
        nodes.append(helper.make_node("Relu", [name], [f"{name}.relu"], name=f"{name}.relu"))
        return f"{name}.relu"

    x = conv("conv1", "input", 3, 64, 7, 2, 3, relu=True)
    nodes.append(
        helper.make_node(
            "MaxPool", [x], ["maxpool"], name="maxpool",
            kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
        )
    )  # fmt: skip
    x, c = "maxpool", 64
    for i, (m, s) in enumerate(RESNET_STAGES, start=1):
        for blk in range(2):
            stride = s if blk == 0 else 1
            tag = f"layer{i}.{blk}"
            y = conv(f"{tag}.conv1", x, c, m, 3, stride, 1, relu=True)
            y = conv(f"{tag}.conv2", y, m, m, 3, 1, 1, relu=False)
            short = x
            if stride != 1 or c != m:
                short = conv(f"{tag}.downsample", x, c, m, 1, stride, 0, relu=False)
            nodes.append(helper.make_node("Add", [y, short], [f"{tag}.add"], name=f"{tag}.add"))
            nodes.append(
                helper.make_node("Relu", [f"{tag}.add"], [f"{tag}.relu"], name=f"{tag}.relu")
            )
            x, c = f"{tag}.relu", m
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["avgpool"], name="avgpool"))
    nodes.append(helper.make_node("Flatten", ["avgpool"], ["flatten"], name="flatten", axis=1))
    fc_w = rng.standard_normal((1000, 512)).astype(np.float32) * np.float32(np.sqrt(1 / 512))
    fc_b = np.zeros(1000, np.float32)
    nodes.append(
        helper.make_node(
            "Gemm", ["flatten", const("fc.weight", fc_w), const("fc.bias", fc_b)], ["fc"],
            name="fc", transB=1,
        )
    )  # fmt: skip
    outputs = [
        helper.make_tensor_value_info(
            n.output[0], TensorProto.FLOAT, [None] * (2 if n.op_type in ("Flatten", "Gemm") else 4)
        )
        for n in nodes
    ]
    graph = helper.make_graph(
        nodes,
        "resnet18",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return len(nodes)


def ort_session(path: Path, threads: int, spinning: bool = True):
    """An onnxruntime CPU session with ``threads`` intra-op threads.

    By default its idle threads spin for a while after each run; in an
    interleaved loop they then hold the cores while the next convtool call
    starts. ``spinning=False`` makes them wait passively, as convtool's and
    PyTorch's threads do here (OMP_WAIT_POLICY=passive).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def convtool_reads_onnx() -> bool:
    """Whether this convtool can run an .onnx file (the import lands separately)."""
    try:
        import convtool.network as network
    except ImportError:  # pragma: no cover
        return False
    if getattr(network, "__path__", None) is not None:  # the network package
        import pkgutil

        names = {m.name for m in pkgutil.iter_modules(network.__path__)}
        return any("onnx" in n for n in names)
    return False


MEMORY_SCRIPT = """
import resource, sys, tracemalloc
import numpy as np
import convtool
from convtool.network import feature_maps, load_net
img = np.random.default_rng(0).random((224, 224, 3), dtype=np.float32)
net = load_net(sys.argv[1])
feature_maps(img, net)  # load or compile the kernels first
tracemalloc.start()
maps = feature_maps(img, net)
cur, peak = tracemalloc.get_traced_memory()
kept = sum(a.nbytes for _, a in maps)
# VmHWM: this process image's peak RSS (ru_maxrss would include the parent's pages
# from before exec, as the fork copied them)
with open("/proc/self/status") as fh:
    hwm = [int(line.split()[1]) for line in fh if line.startswith("VmHWM:")]
rss = hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(maps), kept, peak, rss)
"""


def peak_memory(model: Path, threads: int) -> dict[str, float] | None:
    """Peak memory of one ResNet-18 run with all maps kept, in a fresh process (MiB)."""
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    res = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(model)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if res.returncode != 0:
        print(f"memory run failed: {res.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    n, kept, peak, rss = (float(v) for v in res.stdout.split())
    mib = 1 << 20
    return {
        "maps": n,
        "kept_mib": kept / mib,
        "traced_peak_mib": peak / mib,
        "maxrss_mib": rss / 1024,
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--no-layers", action="store_true", help="skip the per-convolution rows")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocess")
    args = p.parse_args(argv)
    common.set_threads(args.threads)

    import numpy as np
    import torch
    import torch.nn.functional as F

    from convtool.conv2d import conv2d
    from convtool.network import feature_maps, load_net, plan

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    img = rng.random((224, 224, 3), dtype=np.float32)
    chw = np.ascontiguousarray(np.moveaxis(img, -1, 0))
    rows: list[dict] = []

    def row(case, ours, peer, peer_name, diff, note="", alone=None):
        rows.append(
            {
                "alone_convtool_ms": alone[0].median_ms if alone else None,
                "alone_peer_ms": alone[1].median_ms if alone else None,
                "alone_ratio": alone[0].median / alone[1].median if alone else None,
                "case": case,
                "convtool_ms": ours.median_ms,
                "convtool_min_ms": ours.min_ms,
                "convtool_first_ms": ours.first * 1e3,
                "peer": peer_name,
                "peer_ms": peer.median_ms,
                "peer_min_ms": peer.min_ms,
                "ratio": ours.median / peer.median,
                "max_abs_diff": diff,
                "note": note,
            }
        )
        print(f"  {case}: {ours.median_ms:.1f} ms vs {peer_name} {peer.median_ms:.1f} ms",
              file=sys.stderr)  # fmt: skip

    # VGG-16 blocks 1-2, every map kept
    net = load_net(VGG_SPEC)
    layers = plan(net, chw.shape)
    torch_vgg = vgg_torch(layers, args.threads)
    firsts = warm_up(lambda: feature_maps(img, net), lambda: torch_vgg(chw))
    ours, peer = common.timeit_pair(
        lambda: feature_maps(img, net), lambda: torch_vgg(chw), repeat=args.repeat
    )
    ours.first, peer.first = firsts
    diff = max(
        common.check_agree(f"VGG map {i} ({layer.name})", a, t[0].numpy())
        for i, ((layer, a), t) in enumerate(zip(ours.result, peer.result, strict=True))
    )
    alone = (
        common.timeit(lambda: feature_maps(img, net), repeat=args.repeat),
        common.timeit(lambda: torch_vgg(chw), repeat=args.repeat),
    )
    row("VGG-16 blocks 1-2 (10 maps)", ours, peer, "torch", diff, "target <= 1.0", alone)

    if not args.no_layers:
        convs = [(f"VGG {layer.name} {i}", layer) for i, layer in enumerate(layers)]
        cases = []
        x = chw
        for name, layer in convs:
            if layer.kind == "conv":
                c, h, _ = layer.in_shape
                cases.append((f"{name}: {c}->{layer.weight.shape[0]} 3x3 at {h}", x, layer.weight,
                              layer.bias, 1, 1))  # fmt: skip
            from convtool.network import run_layer

            x = run_layer(layer, x)
        for name, c, m, k, stride, pad, side in resnet18_convs():
            w = rng.standard_normal((m, c, k, k)).astype(np.float32) * np.float32(
                np.sqrt(2 / (c * k * k))
            )
            w.setflags(write=False)  # as a network's weights are: packed once, then trusted
            b = rng.standard_normal(m).astype(np.float32)
            xin = rng.standard_normal((c, side, side)).astype(np.float32)
            cases.append((f"ResNet-18 {name}: {c}->{m} at {side}", xin, w, b, stride, pad))
        for name, xin, w, b, stride, pad in cases:
            tx, tw, tb = torch.from_numpy(xin)[None], torch.from_numpy(w), torch.from_numpy(b)

            def peer_fn(tx=tx, tw=tw, tb=tb, stride=stride, pad=pad):
                with torch.no_grad():
                    return F.conv2d(tx, tw, tb, stride=stride, padding=pad)

            ours, peer = common.timeit_pair(
                lambda xin=xin, w=w, b=b, stride=stride, pad=pad: conv2d(
                    xin, w, b, stride=stride, padding=pad
                ),
                peer_fn,
                repeat=args.repeat,
            )
            diff = common.check_agree(name, ours.result, peer.result[0].numpy())
            row(name, ours, peer, "torch", diff)

    # ResNet-18 ONNX model, every node output
    memory = None
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "resnet18.onnx"
        n_nodes = build_resnet18(model)
        nchw = chw[None]
        variants = [("onnxruntime", True), ("onnxruntime, no spinning", False)]
        for peer_name, spinning in variants:
            sess = ort_session(model, args.threads, spinning)
            names = [o.name for o in sess.get_outputs()]

            def ort_fn(sess=sess, names=names):
                return sess.run(names, {"input": nchw})

            if not convtool_reads_onnx():
                t = common.timeit(ort_fn, repeat=args.repeat)
                rows.append(
                    {
                        "case": f"ResNet-18 ONNX ({n_nodes} nodes, all maps)",
                        "peer": peer_name,
                        "peer_ms": t.median_ms,
                        "peer_min_ms": t.min_ms,
                        "note": "convtool cannot read ONNX yet (import not merged)",
                    }
                )
                continue
            resnet = load_net(model)  # parsed once, as the onnxruntime session is made once
            firsts = warm_up(lambda resnet=resnet: feature_maps(img, resnet), ort_fn)
            ours, peer = common.timeit_pair(
                lambda resnet=resnet: feature_maps(img, resnet), ort_fn, repeat=args.repeat
            )
            ours.first, peer.first = firsts
            by_name = dict(zip(names, peer.result, strict=True))
            diff = 0.0
            for layer, a in ours.result:
                ref = by_name.get(layer.name)
                if ref is not None:
                    diff = max(diff, common.check_agree(layer.name, a, ref.reshape(a.shape)))
            alone = (
                common.timeit(lambda resnet=resnet: feature_maps(img, resnet), repeat=args.repeat),
                common.timeit(ort_fn, repeat=args.repeat),
            )
            row(f"ResNet-18 ONNX ({n_nodes} nodes, all maps)", ours, peer, peer_name, diff,
                "target <= 1.5", alone)  # fmt: skip
        if convtool_reads_onnx() and not args.no_memory:
            memory = peak_memory(model, args.threads)

    info = common.machine()
    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover
        pass
    if args.json != "-":
        print(common.machine_text(info))
        print(f"torch {info['torch']} ({info['torch_threads']} threads), onnxruntime "
              f"{info.get('onnxruntime', '-')} ({args.threads} intra-op threads)\n")  # fmt: skip
        table = [
            (
                r["case"],
                r.get("convtool_ms"),
                r.get("convtool_min_ms"),
                r["peer"],
                r.get("peer_ms"),
                r.get("ratio"),
                r.get("alone_convtool_ms"),
                r.get("alone_peer_ms"),
                r.get("alone_ratio"),
                None if r.get("max_abs_diff") is None else f"{r['max_abs_diff']:.1e}",
                r.get("note", ""),
            )
            for r in rows
        ]
        print(
            common.markdown_table(
                [
                    "case",
                    "convtool ms",
                    "min",
                    "peer",
                    "peer ms",
                    "ratio",
                    "alone: convtool ms",
                    "peer ms",
                    "ratio",
                    "max diff",
                    "note",
                ],  # fmt: skip
                table,
            )
        )
        if memory:
            print(
                f"\nResNet-18, all {memory['maps']:.0f} maps kept: maps"
                f" {memory['kept_mib']:.0f} MiB, traced peak {memory['traced_peak_mib']:.0f} MiB,"
                f" process max RSS {memory['maxrss_mib']:.0f} MiB"
            )
    if args.json:
        common.dump_json(args.json, {"machine": info, "rows": rows, "memory": memory})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
