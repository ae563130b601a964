# ruff: noqa: E501  (TOML snippets read best on one line)
"""Graph networks (name, inputs, add, concat, batchnorm, global_pool, flatten, fc, softmax,
dropout, clip, relu6) against a plain-numpy reference interpreter written here.

The reference runs each node with its own float64 numpy code (sliding-window
einsum convolution, window max/mean pooling, matrix-vector fc) and reads
weight files itself with ``np.load``; it shares nothing with convtool's walker
or operators except the planned random weights of nets that draw them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view
from typer.testing import CliRunner

from convtool.cli import app
from convtool.errors import UsageError
from convtool.network import Net, Node, feature_maps, load_net, plan

NETS = Path(__file__).resolve().parent.parent / "samples" / "nets"
runner = CliRunner()

# ------------------------------------------------------------------ reference

_NP_PAD = {"zero": "constant", "constant": "constant", "reflect": "reflect", "replicate": "edge",
           "symmetric": "symmetric", "wrap": "wrap"}  # fmt: skip


def ref_conv(x, w, b, stride=1, pad="valid", dilation=1, groups=1, pad_value=0.0):
    """torch conv2d: cross-correlation by sliding windows and einsum, float64."""
    c = x.shape[0]
    m, cg, k, _ = w.shape
    if groups == "depthwise":
        groups = c
    if isinstance(pad, int):
        before = after = pad
        mode = "constant"
    elif pad == "valid":
        before = after = 0
        mode = "constant"
    else:  # a padded mode keeps the size at stride 1; the centre is index k // 2
        before, after = dilation * (k // 2), dilation * (k - 1 - k // 2)
        mode = _NP_PAD[pad]
    widths = ((0, 0), (before, after), (before, after))
    kw = {"constant_values": pad_value} if mode == "constant" else {}
    xp = np.pad(x, widths, mode=mode, **kw)
    span = dilation * (k - 1) + 1
    win = sliding_window_view(xp, (span, span), axis=(1, 2))[
        :, ::stride, ::stride, ::dilation, ::dilation
    ]
    mg = m // groups
    out = np.concatenate([
        np.einsum("chwij,mcij->mhw", win[g * cg:(g + 1) * cg], w[g * mg:(g + 1) * mg])
        for g in range(groups)
    ])  # fmt: skip
    return out if b is None else out + np.asarray(b, np.float64)[:, None, None]


def ref_pool(x, mode, f, s, pad="valid"):
    """torch max_pool2d / avg_pool2d (padding f//2 with -inf for max in padded modes)."""
    if pad != "valid":
        p = f // 2
        x = np.pad(x, ((0, 0), (p, p), (p, p)), mode="constant", constant_values=-np.inf)
    win = sliding_window_view(x, (f, f), axis=(1, 2))[:, ::s, ::s]
    return win.max(axis=(3, 4)) if mode == "max" else win.mean(axis=(3, 4))


def _file_arrays(path):
    data = np.load(path)
    if isinstance(data, np.lib.npyio.NpzFile):
        return {k: data[k].astype(np.float64) for k in data.files}
    return {"weight": data.astype(np.float64)}


def reference(layers, image, input_scale=1.0):
    """Every node's value, computed from the spec with plain numpy in float64."""
    img = np.asarray(image, np.float64)
    values = {"input": (img[None] if img.ndim == 2 else np.moveaxis(img, -1, 0)) * input_scale}
    out = []
    for layer in layers:
        o, kind = layer.spec.options, layer.kind
        xs = [values[name] for name in layer.inputs]
        x = xs[0]
        if "weights" in o:
            arrs = _file_arrays(o["weights"])
        else:
            arrs = {k: v.astype(np.float64) for k, v in layer.arrays.items()}
        if kind == "conv":
            b = arrs.get("bias") if o["bias"] is not False else None
            if b is None and o["bias"] is not False:
                b = np.full(arrs["weight"].shape[0], 0.0 if o["bias"] is True else o["bias"])
            y = ref_conv(
                x,
                arrs["weight"],
                b,
                o["stride"],
                o["pad"],
                o["dilation"],
                o["groups"],
                o["pad_value"],
            )
        elif kind == "pool":
            y = ref_pool(x, o["mode"], o["size"], o["stride"], o["pad"])
        elif kind == "relu":
            y = np.maximum(x, 0)
        elif kind == "relu6":
            y = np.minimum(np.maximum(x, 0), 6)
        elif kind == "clip":
            y = np.minimum(np.maximum(x, o["min"]), o["max"])
        elif kind == "sigmoid":
            y = 1 / (1 + np.exp(-x))
        elif kind == "add":
            y = sum(xs)
        elif kind == "concat":
            y = np.concatenate(xs, axis=0)
        elif kind == "batchnorm":
            shape = (-1,) + (1,) * (x.ndim - 1)
            if "weights" not in o:
                arrs = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
            g, bb, mu, var = (np.reshape(arrs[k], shape) if np.ndim(arrs[k]) else arrs[k]
                              for k in ("weight", "bias", "running_mean", "running_var"))  # fmt: skip
            y = (x - mu) / np.sqrt(var + o["eps"]) * g + bb
        elif kind == "global_pool":
            y = (
                x.max(axis=(1, 2), keepdims=True)
                if o["mode"] == "max"
                else x.mean(axis=(1, 2), keepdims=True)
            )
        elif kind == "flatten":
            y = x.reshape(-1)
        elif kind == "fc":
            w = arrs["weight"]
            b = arrs.get("bias") if o["bias"] is not False else None
            if b is None and o["bias"] is not False:
                b = np.full(w.shape[0], 0.0 if o["bias"] is True else o["bias"])
            y = w @ x + (0 if b is None else b)
        elif kind == "softmax":
            e = np.exp(x - x.max(axis=0))
            y = e / e.sum(axis=0)
        elif kind == "dropout":
            y = x
        else:  # pragma: no cover - a node type this reference does not know
            raise AssertionError(f"no reference for {kind}")
        values[layer.name] = y
        out.append(y)
    return out


def assert_matches_reference(image, net, input_scale=1.0):
    """feature_maps equals the reference at every node: max error <= 1e-4 of the largest value."""
    maps = feature_maps(image, net)
    layers = [layer for layer, _ in maps]
    want = reference(layers, image, input_scale)
    for (layer, got), ref in zip(maps, want, strict=True):
        assert got.dtype == np.float32, layer.name
        assert got.shape == ref.shape == layer.out_shape, layer.name
        scale = max(np.abs(ref).max(), 1e-6)
        err = np.abs(got - ref).max()
        assert err <= 1e-4 * scale, f"{layer.name}: max error {err} vs largest {scale}"
    return maps


# ------------------------------------------------------------------- graphs


def write(tmp_path, text, name="net.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def rng_npz(tmp_path, name, seed, **shapes):
    rng = np.random.default_rng(seed)
    arrays = {}
    for key, shape in shapes.items():
        a = rng.standard_normal(shape).astype(np.float32) * 0.5
        if key == "running_var":
            a = np.abs(a) + 0.5
        arrays[key] = a
    np.savez(tmp_path / name, **arrays)
    return arrays


def test_residual_block_with_batchnorm_and_projection(tmp_path, astronaut):
    rng_npz(tmp_path, "bn1.npz", 1, weight=8, bias=8, running_mean=8, running_var=8)
    rng_npz(tmp_path, "bn2.npz", 2, weight=8, bias=8, running_mean=8, running_var=8)
    rng_npz(tmp_path, "proj.npz", 3, weight=(8, 3, 1, 1), bias=8)
    net = write(
        tmp_path,
        """
input_scale = "1/255"
[[layers]]
name = "c1"
type = "conv"
filters = "random:8"
stride = 2
pad = 1
seed = 4
[[layers]]
type = "batchnorm"
weights = "bn1.npz"
[[layers]]
type = "relu"
[[layers]]
name = "c2"
type = "conv"
filters = "random:8"
pad = "zero"
seed = 5
[[layers]]
name = "bn2"
type = "batchnorm"
weights = "bn2.npz"
[[layers]]
name = "shortcut"
type = "conv"
weights = "proj.npz"
stride = 2
inputs = ["input"]
[[layers]]
name = "sum"
type = "add"
inputs = ["bn2", "shortcut"]
[[layers]]
type = "relu"
""",
    )
    maps = assert_matches_reference(astronaut[100:123, 200:219], net, 1 / 255)
    by_name = {layer.name: layer for layer, _ in maps}
    assert by_name["sum"].inputs == ("bn2", "shortcut")
    assert by_name["sum"].out_shape == (8, 12, 10)
    assert by_name["bn2"].params == 16 and by_name["bn2"].buffers == 16
    # RF: the longest path (3x3 stride 2, then 3x3) is 3 + 2*2 = 7; the shortcut's is 1
    assert by_name["shortcut"].rf == 1 and by_name["sum"].rf == 7


def test_inception_module_concatenates_branches(tmp_path, camera):
    net = write(
        tmp_path,
        """
[[layers]]
name = "b1"
type = "conv"
filters = "random:4"
size = 1
seed = 1
[[layers]]
name = "b2_reduce"
type = "conv"
filters = "random:3"
size = 1
seed = 2
inputs = ["input"]
[[layers]]
name = "b2"
type = "conv"
filters = "random:5"
size = 3
pad = "zero"
seed = 3
[[layers]]
name = "b3_reduce"
type = "conv"
filters = "random:2"
size = 1
seed = 4
inputs = ["input"]
[[layers]]
name = "b3"
type = "conv"
filters = "random:3"
size = 5
pad = 2
seed = 5
[[layers]]
name = "b4_pool"
type = "pool"
mode = "max"
size = 3
stride = 1
pad = "replicate"
inputs = ["input"]
[[layers]]
name = "b4"
type = "conv"
filters = "random:2"
size = 1
seed = 6
[[layers]]
name = "mixed"
type = "concat"
inputs = ["b1", "b2", "b3", "b4"]
[[layers]]
type = "relu"
""",
    )
    maps = assert_matches_reference(camera[200:221, 300:317], net)
    mixed = next(layer for layer, _ in maps if layer.name == "mixed")
    assert mixed.out_shape == (14, 21, 17)
    assert mixed.labels[:2] == ("b1:r0", "b1:r1") and mixed.labels[4] == "b2:r0"
    assert mixed.rf == 5  # the 5x5 branch


def test_fire_and_inverted_residual_samples_match_reference(astronaut):
    for name in ("fire.toml", "inverted_residual.toml"):
        assert_matches_reference(
            astronaut[::16, ::16], NETS / name, load_net(NETS / name).input_scale
        )


@pytest.mark.parametrize("name", ["residual.toml", "inception.toml", "classifier.toml"])
def test_sample_graphs_match_reference(name, astronaut):
    net = load_net(NETS / name)
    image = (
        astronaut[::16, ::16]
        if net.input_shape is None
        else astronaut[:: 512 // net.input_shape[1], :: 512 // net.input_shape[2]]
    )
    assert_matches_reference(image, net, net.input_scale)


def test_classifier_with_linear_weights_dropout_clip_and_softmax(tmp_path, camera):
    w = rng_npz(tmp_path, "fc1.npz", 7, weight=(6, 2 * 5 * 4), bias=6)
    net = write(
        tmp_path,
        """
[[layers]]
type = "conv"
filters = "random:2"
size = 3
seed = 9
[[layers]]
type = "relu6"
[[layers]]
type = "pool"
mode = "avg"
size = 2
[[layers]]
type = "flatten"
[[layers]]
name = "fc1"
type = "fc"
weights = "fc1.npz"
[[layers]]
type = "dropout"
p = 0.3
[[layers]]
type = "clip"
min = -1
max = 1.5
[[layers]]
name = "logits"
type = "fc"
units = 3
seed = 2
init = "xavier"
[[layers]]
type = "softmax"
""",
    )
    maps = assert_matches_reference(camera[40:52, 60:70] / 255, net)
    layers = {layer.name: (layer, out) for layer, out in maps}
    assert layers["flatten"][0].out_shape == (40,)
    assert layers["fc1"][0].params == 6 * 40 + 6 and layers["fc1"][0].macs == 240
    np.testing.assert_array_equal(layers["fc1"][0].weight, w["weight"])
    assert layers["softmax"][1].sum() == pytest.approx(1.0, abs=1e-6)
    # flatten and fc see the whole input: 3x3 then a 2x2/2 pool over a 5x4 map
    assert layers["flatten"][0].rf == 4 + (5 - 1) * 2 and layers["flatten"][0].jump is None


def test_fc_random_init_is_seeded_he_or_xavier():
    a = plan("flatten fc(units=64, seed=3)", "20x20x4")[1]
    b = plan("flatten fc(64, seed=3)", "20x20x4")[1]
    x = plan("flatten fc(64, seed=3, init=xavier)", "20x20x4")[1]
    np.testing.assert_array_equal(a.weight, b.weight)
    assert a.weight.shape == (64, 1600) and a.bias.shape == (64,)
    assert a.weight.std() == pytest.approx(np.sqrt(2 / 1600), rel=0.05)
    assert x.weight.std() == pytest.approx(np.sqrt(2 / (1600 + 64)), rel=0.05)


def test_global_pool_and_batchnorm_defaults(astronaut):
    img = astronaut[:30, :40]
    (bn, y), (gp, z), (gm, zm) = feature_maps(img, "batchnorm global_pool(avg) global_pool(max)")
    x = np.moveaxis(img, -1, 0).astype(np.float64)
    np.testing.assert_allclose(y, x / np.sqrt(1 + 1e-5), rtol=1e-6)  # a fresh BatchNorm2d
    np.testing.assert_allclose(z[:, 0, 0], y.mean(axis=(1, 2)), rtol=1e-5)
    assert gp.out_shape == (3, 1, 1) and zm.shape == (3, 1, 1)
    assert bn.params == 6 and bn.buffers == 6


def test_nodes_may_be_written_in_any_order_and_chains_still_work(tmp_path, camera):
    nodes = (
        Node("add", name="sum", inputs=("a", "b")),
        Node("relu", name="a", inputs=("input",)),
        Node("abs", name="b", inputs=("input",)),
    )
    maps = feature_maps(camera[:8, :8] - 128, Net(layers=nodes))
    assert [layer.name for layer, _ in maps] == ["a", "b", "sum"]
    x = camera[:8, :8].astype(np.float64) - 128
    np.testing.assert_allclose(maps[-1][1][0], np.maximum(x, 0) + np.abs(x))


def test_unnamed_layers_get_unique_names_and_stems():
    layers = plan("conv(edges) relu conv(random:2) relu", "16x16")
    assert [layer.name for layer in layers] == ["conv", "relu", "conv_2", "relu_2"]
    assert [layer.stem for layer in layers] == ["01_conv", "02_relu", "03_conv", "04_relu"]
    assert [layer.inputs for layer in layers][1:] == [("conv",), ("relu",), ("conv_2",)]


# ----------------------------------------------------------------- hypothesis


@settings(max_examples=25, deadline=None)
@given(data=st.data(), h=st.integers(6, 14), w=st.integers(6, 14), c=st.integers(1, 3))
def test_random_graphs_plan_the_shapes_they_run_and_match_reference(data, h, w, c):
    """Random DAGs of conv / pool / relu / add / concat / batchnorm nodes."""
    shapes = {"input": (c, h, w)}
    nodes = []
    for i in range(data.draw(st.integers(1, 6))):
        name = f"n{i}"
        names = list(shapes)
        kind = data.draw(st.sampled_from(["conv", "pool", "relu", "add", "concat", "batchnorm"]))
        if kind in ("add", "concat"):
            a = data.draw(st.sampled_from(names))
            if kind == "add":
                partners = [n for n in names if shapes[n] == shapes[a]]
            else:
                partners = [n for n in names if shapes[n][1:] == shapes[a][1:]]
            b = data.draw(st.sampled_from(partners))  # a itself is always a partner
            ch = shapes[a][0] + (shapes[b][0] if kind == "concat" else 0)
            nodes.append(Node(kind, {}, name, (a, b)))
            shapes[name] = (ch, *shapes[a][1:])
            continue
        src = data.draw(st.sampled_from(names))
        sc, sh, sw = shapes[src]
        if kind == "conv":
            m, k = data.draw(st.integers(1, 3)), data.draw(st.sampled_from([1, 2, 3]))
            stride = data.draw(st.integers(1, 2))
            pad = data.draw(st.sampled_from(["zero", "valid", "reflect"]))
            if pad != "zero" and min(sh, sw) < k + 1:
                pad = "zero"
            node = load_net(f"conv(random:{m},size={k},stride={stride},pad={pad},seed={i})").layers[
                0
            ]
            span = 0 if pad != "valid" else k - 1
            shapes[name] = (m, (sh - span - 1) // stride + 1, (sw - span - 1) // stride + 1)
        elif kind == "pool":
            if min(sh, sw) < 2:
                node, shapes[name] = load_net("relu").layers[0], shapes[src]
            else:
                node = load_net(f"pool({data.draw(st.sampled_from(['max', 'avg']))},2)").layers[0]
                shapes[name] = (sc, sh // 2, sw // 2)
        else:
            node, shapes[name] = load_net(kind).layers[0], shapes[src]
        nodes.append(Node(node.kind, node.options, name, (src,)))
    img = np.random.default_rng(h * w).standard_normal((h, w, c)).astype(np.float32)
    net = Net(layers=tuple(nodes))
    layers = plan(net, (c, h, w))
    assert [layer.out_shape for layer in layers] == [shapes[n.name] for n in nodes]
    assert_matches_reference(img, net)


# ------------------------------------------------------------------- errors

BAD_GRAPHS = [
    (
        '[[layers]]\nname = "a"\ntype = "relu"\ninputs = ["b"]\n[[layers]]\nname = "b"\ntype = "relu"\ninputs = ["a"]\n',
        r"layer 1 'a' \(relu\): its inputs form a cycle \(a -> b -> a\)",
    ),
    (
        '[[layers]]\nname = "a"\ntype = "relu"\ninputs = ["a"]\n',
        r"layer 1 'a' \(relu\): its inputs form a cycle \(a -> a\)",
    ),
    (
        '[[layers]]\ntype = "relu"\n[[layers]]\ntype = "add"\ninputs = ["relu", "nope"]\n',
        r"layer 2 \(add\): input 'nope' is not the name of a layer",
    ),
    (
        '[[layers]]\nname = "x"\ntype = "relu"\n[[layers]]\nname = "x"\ntype = "abs"\n',
        r"layer 2 'x' \(abs\): name 'x' is already used by layer 1",
    ),
    (
        '[[layers]]\nname = "input"\ntype = "relu"\n',
        r"layer 1 'input' \(relu\): the name 'input' is the image's",
    ),
    (
        '[[layers]]\nname = "a"\ntype = "pool"\n[[layers]]\ntype = "add"\ninputs = ["a", "input"]\n',
        r"layer 2 \(add\): inputs 'a' \(3x6x5\) and 'input' \(3x12x10\) have different shapes",
    ),
    (
        '[[layers]]\nname = "a"\ntype = "conv"\nfilters = "random:2"\n[[layers]]\ntype = "concat"\ninputs = ["input", "a"]\n',
        r"layer 2 \(concat\): inputs 'input' \(3x12x10\) and 'a' \(2x10x8\) do not fit together",
    ),
    (
        '[[layers]]\ntype = "add"\ninputs = ["input"]\n',
        r"layer 1 \(add\): takes 2 or more input\(s\), got 1",
    ),
    (
        '[[layers]]\ntype = "fc"\nunits = 3\n',
        r"layer 1 \(fc\): needs a flat vector, got a 3x12x10 map; put a flatten",
    ),
    (
        '[[layers]]\ntype = "flatten"\n[[layers]]\ntype = "conv"\nfilters = "edges"\n',
        r"layer 2 \(conv\): needs a \(C, H, W\) map",
    ),
    ('[[layers]]\ntype = "relu"\ninputs = 3\n', r"layer 1 \(relu\): inputs must be a list"),
    (
        '[[layers]]\ntype = "relu"\ninputs = ["input", 4]\n',
        r"layer 1 \(relu\): inputs must be layer names",
    ),
    ('[[layers]]\ntype = "relu"\nname = ""\n', r"layer 1: name must be a non-empty string"),
    ('[[layers]]\ntype = "fc"\n', r"layer 1 \(fc\): give exactly one of units"),
    ('[[layers]]\ntype = "clip"\n', r"layer 1 \(clip\): give min, max or both"),
    (
        '[[layers]]\ntype = "clip"\nmin = 2\nmax = 1\n',
        r"layer 1 \(clip\): min 2 is larger than max 1",
    ),
    (
        '[[layers]]\ntype = "global_pool"\nmode = "median"\n',
        r"layer 1 \(global_pool\): mode must be avg or max",
    ),
    ('[[layers]]\ntype = "dropout"\np = 1\n', r"layer 1 \(dropout\): p must be in \[0, 1\)"),
]


def one_error_line(res):
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("convtool: error: ")
    return lines[0]


@pytest.fixture()
def small_png(tmp_path, astronaut):
    from PIL import Image

    path = tmp_path / "small.png"
    Image.fromarray(astronaut[:12, :10].astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("text,pattern", BAD_GRAPHS)
def test_bad_graphs_are_one_line_through_the_cli_and_write_nothing(
    tmp_path, small_png, text, pattern
):
    import re

    net = write(tmp_path, text)
    outdir = tmp_path / "never"
    res = runner.invoke(app, ["visualize", str(small_png), "--net", str(net), "-o", str(outdir)])
    assert res.exit_code == 2, res.output
    assert re.search(pattern, one_error_line(res)), res.output
    assert not outdir.exists()


@pytest.mark.parametrize(
    "spec,pattern",
    [
        ("relu add", r"layer 2 \(add\): add joins branches.*TOML"),
        ("conv(edges) cat", r"layer 2 \(concat\): concat joins branches"),
        ("relu(inputs=input)", r"layer 1 \(relu\): the inline form is a chain.*TOML"),
        ("relu(name=x)", r"the inline form is a chain"),
    ],
)
def test_inline_branches_point_to_toml(spec, pattern):
    with pytest.raises(UsageError, match=pattern):
        load_net(spec)


def _bad_weight_cases(tmp_path):
    np.savez(tmp_path / "bn_keys.npz", weight=np.ones(3), bias=np.zeros(3))
    np.savez(
        tmp_path / "bn_shape.npz",
        weight=np.ones(4),
        bias=np.zeros(3),
        running_mean=np.zeros(3),
        running_var=np.ones(3),
    )
    np.savez(tmp_path / "fc_shape.npz", weight=np.ones((5, 7)), bias=np.zeros(5))
    np.savez(tmp_path / "fc_bias.npz", weight=np.ones((5, 360)), bias=np.zeros(4))
    return [
        (
            '[[layers]]\ntype = "batchnorm"\nweights = "bn_keys.npz"\n',
            r"layer 1 \(batchnorm\): bn_keys.npz must hold .*missing running_mean, running_var",
        ),
        (
            '[[layers]]\ntype = "batchnorm"\nweights = "bn_shape.npz"\n',
            r"layer 1 \(batchnorm\): weight in bn_shape.npz has shape \(4,\); expected \(3,\)",
        ),
        (
            '[[layers]]\ntype = "flatten"\n[[layers]]\nname = "head"\ntype = "fc"\nweights = "fc_shape.npz"\n',
            r"layer 2 'head' \(fc\): weight in fc_shape.npz has shape \(5, 7\); expected \(out, 360\)",
        ),
        (
            '[[layers]]\ntype = "flatten"\n[[layers]]\ntype = "fc"\nweights = "fc_bias.npz"\n',
            r"layer 2 \(fc\): bias has shape \(4,\); expected \(5,\)",
        ),
    ]


def test_weights_of_the_wrong_shape_name_the_layer(tmp_path, small_png):
    import re

    for text, pattern in _bad_weight_cases(tmp_path):
        net = write(tmp_path, text)
        outdir = tmp_path / "never"
        res = runner.invoke(
            app, ["visualize", str(small_png), "--net", str(net), "-o", str(outdir)]
        )
        assert res.exit_code == 2, res.output
        assert re.search(pattern, one_error_line(res)), res.output
        assert not outdir.exists()


def test_relu6_clip_softmax_on_wide_values():
    img = np.linspace(-20, 20, 6 * 7 * 3, dtype=np.float32).reshape(6, 7, 3)
    x = np.moveaxis(img, -1, 0).astype(np.float64)
    (_, r6), (_, cl), (_, sm) = feature_maps(img, "relu6 clip(-1, 2.5) softmax")
    np.testing.assert_array_equal(r6, np.minimum(np.maximum(x, 0), 6))
    np.testing.assert_array_equal(cl, np.minimum(np.maximum(r6, -1), 2.5))
    e = np.exp(cl - cl.max(axis=0))
    np.testing.assert_allclose(sm, e / e.sum(axis=0), rtol=1e-6)  # over channels
    ((_, c2),) = feature_maps(img, "clip(max=-3)")
    np.testing.assert_array_equal(c2, np.minimum(x, -3))


# ------------------------------------------------------------------ summary


def test_summary_of_a_graph_names_nodes_and_inputs():
    res = runner.invoke(app, ["summary", str(NETS / "inception.toml")])
    assert res.exit_code == 0, res.output
    head = next(line for line in res.output.splitlines() if "kernel/stride pad" in line)
    assert "name" in head and "inputs" in head
    mixed = next(line for line in res.output.splitlines() if " mixed " in line)
    assert "b1, b2, b3, b4" in mixed and "24×112×112" in mixed
    assert "memory with every map kept" in res.output
    # a chain keeps its one-column table
    res = runner.invoke(app, ["summary", "conv(random:6,size=5) relu", "--input", "28x28"])
    head = next(line for line in res.output.splitlines() if "kernel/stride pad" in line)
    assert "inputs" not in head


def test_summary_json_counts_parameters_as_pytorch_does():
    res = runner.invoke(app, ["summary", str(NETS / "residual.toml"), "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["layer"]: r for r in json.loads(res.output)}
    assert rows["stem"]["params"] == 16 * 3 * 49 + 16
    assert rows["conv1"]["params"] == 16 * 16 * 9  # bias = false: batch norm follows
    assert rows["bn1"]["params"] == 32 and rows["bn1"]["buffers"] == 32  # running stats
    assert rows["sum"]["inputs"] == ["bn2", "block_in"]
    assert sum(r["params"] for r in rows.values()) == 2368 + 3 * 32 + 2 * 2304
    # receptive field along the longest path: 7, pool +2*2, two 3x3 at jump 4
    assert [rows[n]["rf"] for n in ("stem", "block_in", "conv1", "conv2", "sum")] == [
        7,
        11,
        19,
        27,
        27,
    ]
    res = runner.invoke(app, ["summary", str(NETS / "classifier.toml"), "--json"])
    rows = {r["layer"]: r for r in json.loads(res.output)}
    assert rows["flatten"]["output"] == [400] and rows["flatten"]["jump"] is None
    assert rows["fc1"]["params"] == 400 * 120 + 120 and rows["fc1"]["macs"] == 48000
    assert rows["probs"]["rf"] == 32  # flatten and fc see the whole 32x32 input


def test_residual_sample_against_pytorch(astronaut):
    """The same block built from torch.nn modules with the planned weights: same maps, same count."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    layers = plan(NETS / "residual.toml", (3, 64, 64))
    by = {layer.name: layer for layer in layers}

    def conv(name, cin, k, s, p, bias):
        m = nn.Conv2d(cin, 16, k, s, p, bias=bias)
        m.weight.data = torch.from_numpy(by[name].weight.copy())
        if bias:
            m.bias.data = torch.from_numpy(by[name].bias.copy())
        return m

    stem = conv("stem", 3, 7, 2, 3, True)
    conv1, conv2 = conv("conv1", 16, 3, 1, 1, False), conv("conv2", 16, 3, 1, 1, False)
    bns = [nn.BatchNorm2d(16) for _ in range(3)]
    modules = [stem, conv1, conv2, *bns]
    assert sum(p.numel() for m in modules for p in m.parameters()) == sum(x.params for x in layers)
    for m in modules:
        m.eval()
    img = astronaut[100:164, 200:264]
    x = torch.from_numpy(np.moveaxis(img, -1, 0)[None] / 255).float()
    with torch.no_grad():
        block_in = nn.functional.max_pool2d(torch.relu(bns[0](stem(x))), 3, 2, 1)
        out = torch.relu(bns[2](conv2(torch.relu(bns[1](conv1(block_in))))) + block_in)
    got = dict((layer.name, y) for layer, y in feature_maps(img, NETS / "residual.toml"))
    np.testing.assert_allclose(got["block_in"], block_in[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(got["out"], out[0].numpy(), atol=1e-4 * float(out.abs().max()))


# ------------------------------------------------------------------- memory


def test_estimated_maps_are_the_maps_that_run(astronaut):
    from convtool.network import memory_estimate

    img = astronaut[:64, :48]
    for name in ("residual.toml", "inception.toml", "fire.toml"):
        maps = feature_maps(img, NETS / name)
        layers = [layer for layer, _ in maps]
        mem = memory_estimate(layers, (3, 64, 48))
        assert mem.maps == sum(out.nbytes for _, out in maps) + 3 * 64 * 48 * 4
        assert mem.weights == 4 * sum(x.params + x.buffers for x in layers)


def test_a_net_too_big_for_memory_is_one_line_before_any_weight_is_drawn(tmp_path, camera):
    from PIL import Image

    src = tmp_path / "cam.png"
    Image.fromarray(camera.astype(np.uint8)).save(src)
    layers = plan("conv(random:200000,size=3,pad=zero)", (1, 512, 512))
    assert layers[0]._arrays is None  # planning did not draw 1.8 million weights
    outdir = tmp_path / "never"
    res = runner.invoke(
        app,
        [
            "visualize",
            str(src),
            "--layers",
            "conv(random:200000,size=3,pad=zero)",
            "-o",
            str(outdir),
        ],
    )
    assert res.exit_code == 2, res.output
    line = one_error_line(res)
    assert "needs about" in line and "GiB" in line and "CONVTOOL_MAX_MEMORY" in line
    assert not outdir.exists()


def test_memory_cap_from_the_environment(monkeypatch, camera):
    img = camera[:64, :64]
    monkeypatch.setenv("CONVTOOL_MAX_MEMORY", "100K")
    with pytest.raises(UsageError, match=r"needs about .* but 100 KiB is CONVTOOL_MAX_MEMORY=100K"):
        feature_maps(img, "conv(random:8,size=3) relu")
    monkeypatch.setenv("CONVTOOL_MAX_MEMORY", "none")
    assert len(feature_maps(img, "conv(random:8,size=3) relu")) == 2
    monkeypatch.setenv("CONVTOOL_MAX_MEMORY", "lots")
    with pytest.raises(UsageError, match="is not a size"):
        feature_maps(img, "relu")
    monkeypatch.delenv("CONVTOOL_MAX_MEMORY")
    with pytest.raises(UsageError, match="is allowed"):
        feature_maps(img, "conv(random:8,size=3) relu", max_memory="1K")


# ------------------------------------------------------------- bad network files


def _hostile_nets(tmp_path, samples_dir):
    """(file, what the one line must say) for files that are not networks."""
    import shutil

    cases = []

    def add(name, data, pattern):
        path = tmp_path / name
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
        cases.append((path, pattern))

    rng = np.random.default_rng(0)
    add(
        "random.toml",
        rng.integers(0, 256, 300, dtype=np.uint8).tobytes(),
        "not a network file: it is binary",
    )
    add(
        "utf16.toml",
        '[[layers]]\ntype = "relu"\n'.encode("utf-16"),
        "not a network file: it is binary",
    )
    add("nul.toml", b'[[layers]]\ntype = "relu"\x00\n', "not a network file: it is binary")
    add("empty.toml", b"", "no layers")
    add(
        "cut.toml",
        '[[layers]]\ntype = "conv"\nfilters = "edg',
        "malformed TOML: Unterminated string",
    )
    add("table.toml", '[layers]\ntype = "relu"\n', "no layers")
    add("ints.toml", "layers = [1, 2]\n", "layer 1 has no type")
    add("shape.toml", 'input = 5\n[[layers]]\ntype = "relu"\n', "input shape 5 is not HxW")
    png = tmp_path / "picture.png"
    shutil.copy(samples_dir / "coins.png", png)
    cases.append((png, "not a network file: it is binary"))
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    cases.append((folder, "cannot read network file .*folder.toml: Is a directory"))
    cases.append((tmp_path / "nets" / "missing", "network file .*missing does not exist"))
    return cases


def test_files_that_are_not_networks_are_one_line_naming_the_file(tmp_path, small_png, samples_dir):
    import re

    for path, pattern in _hostile_nets(tmp_path, samples_dir):
        with pytest.raises(UsageError, match=pattern) as err:
            load_net(path)
        assert str(path.name) in str(err.value) and "\n" not in str(err.value)
        outdir = tmp_path / "never"
        for args in (
            ["summary", str(path), "--input", "8x8"],
            ["visualize", str(small_png), "--net", str(path), "-o", str(outdir)],
        ):
            res = runner.invoke(app, args)
            assert res.exit_code == 2, (path, res.output)
            line = one_error_line(res)
            assert re.search(pattern, line) and path.name in line, line
        assert not outdir.exists()


def test_weight_files_that_are_not_numpy_arrays_name_the_layer_and_file(tmp_path, small_png):
    import re

    np.savez(tmp_path / "ok.npz", weight=np.ones((2, 3, 3, 3)))
    data = (tmp_path / "ok.npz").read_bytes()
    files = {
        "cut.npz": (data[: len(data) // 2], r"cannot read weights file .*cut.npz \(damaged"),
        "noise.npy": (
            np.random.default_rng(1).integers(0, 256, 200, dtype=np.uint8).tobytes(),
            r"noise.npy is not a .npy or .npz file",
        ),
        "header.npy": (b"\x93NUMPY\x01\x00" + bytes(40), r"cannot read weights file .*header.npy"),
    }
    for name, (raw, _) in files.items():
        (tmp_path / name).write_bytes(raw)
    np.save(tmp_path / "objects.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    files["objects.npy"] = (
        None,
        r"objects.npy \(damaged, or not plain numpy arrays\): Object arrays",
    )
    np.save(tmp_path / "nan.npy", np.full((2, 3, 3, 3), np.nan, np.float32))
    files["nan.npy"] = (None, r"weights in nan.npy contain NaN or infinity")
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    files["text.npy"] = (None, r"weights in text.npy must be real numbers")
    for name, (_, pattern) in files.items():
        for layer in (
            f'type = "conv"\nweights = "{name}"',
            f'type = "batchnorm"\nweights = "{name}"',
        ):
            net = write(tmp_path, f'[[layers]]\nname = "w"\n{layer}\n')
            outdir = tmp_path / "never"
            res = runner.invoke(
                app, ["visualize", str(small_png), "--net", str(net), "-o", str(outdir)]
            )
            assert res.exit_code == 2, res.output
            line = one_error_line(res)
            assert "layer 1 'w'" in line and re.search(pattern, line), line
            assert not outdir.exists()


def test_feature_maps_runs_layers_planned_by_the_caller(camera):
    img = camera[:20, :24]
    layers = plan("conv(random:3,size=3) relu", (1, 20, 24))
    maps = feature_maps(img, "conv(random:3,size=3) relu", layers=layers)
    assert [layer for layer, _ in maps] == layers  # the same objects, not a second plan
    with pytest.raises(
        UsageError, match=r"planned for input \(1, 20, 24\), the image is \(1, 24, 20\)"
    ):
        feature_maps(img.T, "conv(random:3,size=3) relu", layers=layers)


def test_flat_vectors_join_and_normalise(tmp_path, astronaut):
    """Two fc heads on one flattened map: concat and add of vectors, batch norm on a vector."""
    rng_npz(tmp_path, "bn.npz", 3, weight=7, bias=7, running_mean=7, running_var=7)
    net = write(
        tmp_path,
        """
[[layers]]
type = "global_pool"
mode = "max"
[[layers]]
name = "flat"
type = "flatten"
[[layers]]
name = "a"
type = "fc"
units = 4
seed = 1
[[layers]]
name = "b"
type = "fc"
units = 3
seed = 2
bias = 0.5
inputs = ["flat"]
[[layers]]
name = "both"
type = "concat"
inputs = ["a", "b"]
[[layers]]
type = "batchnorm"
weights = "bn.npz"
[[layers]]
name = "twice"
type = "add"
inputs = ["batchnorm", "both"]
""",
    )
    maps = assert_matches_reference(astronaut[:16, :16] / 255, net)
    assert [out.shape for _, out in maps][-3:] == [(7,), (7,), (7,)]
