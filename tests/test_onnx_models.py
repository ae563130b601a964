"""ONNX models through convtool's network graph, every node against onnxruntime.

The committed models in tests/data/onnx are torchvision-shaped miniatures
exported by both torch exporters (tests/data/make_onnx_fixtures.py, run by
hand; these tests need no torch). onnxruntime returns every intermediate
value because each node's output is added to a copy of the model's outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from convtool.errors import UsageError  # noqa: E402
from convtool.network import feature_maps, load_net, plan  # noqa: E402
from convtool.network.onnx_import import load_onnx, read_onnx  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "onnx"
FIXTURES = sorted(DATA.glob("*.onnx"))
REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "samples" / "nets" / "tiny_cnn.onnx"
FOLDED_TYPES = {"Shape", "Gather", "Unsqueeze", "Constant", "ConstantOfShape", "Cast", "Equal",
                "If", "Where", "Range", "Slice"}  # fmt: skip


def ort_values(model, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Every named value of ``model`` on input ``x`` (NCHW), from onnxruntime."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in names:
        if name not in have:
            m.graph.output.append(onnx.ValueInfoProto(name=name))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    weights = {t.name for t in m.graph.initializer}
    image = next(i.name for i in m.graph.input if i.name not in weights)
    return dict(zip(names, sess.run(names, {image: x}), strict=True))


def parity(model, image: np.ndarray, net=None) -> tuple[float, int]:
    """Max error over the nodes relative to each node's largest value, and how many compared.

    A layer shows the value its ONNX node writes (its first output, or the
    output after the ``:`` for the extra outputs of a multi-output node).
    """
    maps = feature_maps(image, net if net is not None else load_onnx(model))
    table = {}
    for n in model.graph.node:
        base = n.name or n.output[0]
        table[base] = n.output[0]
        for out in n.output[1:]:
            table[f"{base}:{out}"] = out
    shown = {layer.name: table[layer.name] for layer, _ in maps if layer.name in table}
    x = np.moveaxis(image, -1, 0)[None] if image.ndim == 3 else image[None, None]
    want = ort_values(model, np.ascontiguousarray(x, np.float32), sorted(set(shown.values())))
    worst, compared = 0.0, 0
    for layer, got in maps:
        if layer.name not in shown:
            continue
        ref = want[shown[layer.name]]
        assert got.shape == _drop_n(ref.shape), (layer.name, got.shape, ref.shape)
        scale = max(float(np.abs(ref).max()), 1e-30)
        err = float(np.abs(got.astype(np.float64) - ref.reshape(got.shape)).max())
        worst = max(worst, err / scale)
        compared += 1
    return worst, compared


def _drop_n(shape):
    shape = tuple(shape)
    return (shape[1:] if len(shape) >= 2 and shape[0] == 1 else shape) or (1,)


def _image(shape, seed=0):
    _, c, h, w = shape
    return np.random.default_rng(seed).uniform(-1, 1, (h, w, c)).astype(np.float32)


# ------------------------------------------------------------------ fixtures


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_exported_models_match_onnxruntime_at_every_node(path):
    model = onnx.load(str(path))
    g = read_onnx(path)
    worst, compared = parity(model, _image(g.input_shape), str(path))
    assert compared == len(g.nodes)
    assert worst <= 1e-4, worst


def test_fixture_set_is_complete():
    names = {p.name.split(".")[0] for p in FIXTURES}
    assert len(names) == 8 and len(FIXTURES) == 16
    assert sum(p.stat().st_size for p in FIXTURES) < 2_000_000


def test_shape_arithmetic_never_reaches_the_maps():
    # the TorchScript exports keep Shape/Gather/Concat/If chains; none of them is a map
    for name in ("lenet.ts.onnx", "alexnet_lrn.ts.onnx", "mobilenetv2ish.ts.onnx"):
        model = onnx.load(str(DATA / name))
        kinds = {n.op_type for n in model.graph.node}
        assert kinds & FOLDED_TYPES, name
        net = load_net(DATA / name)
        assert not {node.kind for node in net.layers} & FOLDED_TYPES, name
        assert net.graph.folded > 0


def test_layer_names_and_layout():
    path = DATA / "resnetish.ts.onnx"
    model = onnx.load(str(path))
    image = _image((1, 3, 49, 43))
    maps = feature_maps(image, path)
    assert [layer.name for layer, _ in maps] == [n.name for n in model.graph.node]
    first, out = maps[0]
    assert out.shape == (4, 25, 22) and out.dtype == np.float32
    assert maps[-1][1].shape == (6,)
    # the API changed nothing but layout: ORT fed the NCHW transpose agrees
    want = ort_values(model, np.moveaxis(image, -1, 0)[None].copy(), [model.graph.output[0].name])
    np.testing.assert_allclose(maps[-1][1], want[model.graph.output[0].name][0], atol=1e-4)


def test_dynamic_batch_is_fixed_at_one():
    g = read_onnx(DATA / "lenet.ts.onnx")
    assert g.input_shape == (1, 1, 32, 32)


# --------------------------------------------------- models built in memory


def _model(nodes, inits, in_shape, opset=13, out="out"):
    graph = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _w(*shape, seed=0):
    return np.random.default_rng(seed).normal(0, 0.5, shape).astype(np.float32)


def test_inception_residual_depthwise_classifier_graph():
    n = helper.make_node
    inits = {
        "w1": _w(4, 3, 3, 3), "b1": _w(4, seed=1), "w2": _w(2, 4, 1, 1, seed=2),
        "w3": _w(3, 4, 5, 5, seed=3), "wd": _w(5, 1, 3, 3, seed=4), "s": _w(5, seed=5) + 2,
        "bb": _w(5, seed=6), "m": _w(5, seed=7), "v": np.abs(_w(5, seed=8)) + 0.5,
        "fc": _w(7, 5, seed=9), "fb": _w(7, seed=10), "slope": _w(5, 1, 1, seed=11),
    }  # fmt: skip
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], pads=[2, 0, 1, 1], strides=[2, 2], name="stem"),
        n("Relu", ["c1"], ["r1"]),
        n("Conv", ["r1", "w2"], ["a"], name="branch1x1"),
        n("Conv", ["r1", "w3"], ["b"], pads=[2, 2, 2, 2], name="branch5x5"),
        n("Concat", ["a", "b"], ["cat"], axis=1, name="concat"),
        n("Conv", ["cat", "wd"], ["dw"], group=5, pads=[1, 1, 1, 1], name="depthwise"),
        n("BatchNormalization", ["dw", "s", "bb", "m", "v"], ["bn"], name="bn"),
        n("PRelu", ["bn", "slope"], ["pr"], name="prelu"),
        n("Add", ["pr", "cat"], ["res"], name="residual"),
        n("MaxPool", ["res"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        n("AveragePool", ["mp"], ["ap"], kernel_shape=[2, 2], pads=[0, 1, 0, 1]),
        n("GlobalAveragePool", ["ap"], ["gap"]),
        n("Flatten", ["gap"], ["flat"]),
        n("Gemm", ["flat", "fc", "fb"], ["logits"], transB=1),
        n("Softmax", ["logits"], ["out"], axis=-1),
    ]
    model = _model(nodes, inits, [1, 3, 23, 19])
    worst, compared = parity(model, _image((1, 3, 23, 19)))
    assert compared == len(nodes) and worst <= 1e-4
    layers = plan(load_onnx(model))
    by = {layer.name: layer for layer in layers}
    assert by["stem"].params == 4 * 27 + 4
    assert by["bn"].params == 10 and by["bn"].buffers == 10
    assert by["prelu"].params == 5
    assert layers[-2].kind == "Gemm" and layers[-2].params == 7 * 5 + 7
    assert layers[-1].out_shape == (7,) and layers[-1].jump is None
    assert by["stem"].out_shape == (4, 12, 9)


def test_upsampling_and_gelu_graph():
    """A small FPN-like decoder: nn.Upsample(nearest), GELU as exported (Erf), and
    F.interpolate(size=x.shape[2:], bilinear) whose sizes come from Shape arithmetic."""
    n = helper.make_node
    c = lambda name, *v: n("Constant", [], [name], value=helper.make_tensor(  # noqa: E731
        name + "v", TensorProto.FLOAT if isinstance(v[0], float) else TensorProto.INT64,
        [len(v)], list(v)))  # fmt: skip
    nodes = [
        n("Conv", ["x", "w1"], ["c1"], pads=[1] * 4, strides=[2, 2], name="down"),
        c("up2", 1.0, 1.0, 2.0, 2.0),
        n("Resize", ["c1", "", "up2"], ["u"], mode="nearest", name="upsample",
          coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        c("sqrt2", 1.4142135), c("one", 1.0), c("half", 0.5),
        n("Div", ["u", "sqrt2"], ["g1"]), n("Erf", ["g1"], ["g2"], name="erf"),
        n("Add", ["g2", "one"], ["g3"]), n("Mul", ["u", "g3"], ["g4"]),
        n("Mul", ["g4", "half"], ["gelu"], name="gelu"),
        n("Shape", ["x"], ["xs"]), c("s0", 2), c("s1", 4), c("nc", 1, 4),
        n("Slice", ["xs", "s0", "s1"], ["hw"]), n("Concat", ["nc", "hw"], ["size"], axis=0),
        n("Resize", ["gelu", "", "", "size"], ["out"], mode="linear", name="to_input",
          coordinate_transformation_mode="pytorch_half_pixel"),
    ]  # fmt: skip
    model = _model(nodes, {"w1": _w(4, 3, 3, 3)}, [1, 3, "H", "W"])
    net = load_onnx(model, input_size="13x10")
    worst, compared = parity(model, _image((1, 3, 13, 10)), net=net)
    assert compared == 8 and worst <= 1e-4  # every node that computes from the image
    by = {layer.name: layer for layer in plan(net)}
    assert by["down"].out_shape == (4, 7, 5) and by["upsample"].out_shape == (4, 14, 10)
    assert by["to_input"].out_shape == (4, 13, 10)
    assert by["upsample"].detail == "nearest 7x5 -> 14x10" and by["upsample"].jump == 1
    assert by["upsample"].rf == by["down"].rf == 3 and by["to_input"].rf == 4


def test_shape_arithmetic_patterns_fold():
    """x.view(x.size(0), -1), ConstantOfShape, If on a known condition, Range, Where, Slice."""
    n = helper.make_node
    then_g = helper.make_graph(
        [n("Constant", [], ["t"], value=helper.make_tensor("tv", TensorProto.INT64, [2], [1, -1]))],
        "then", [], [helper.make_tensor_value_info("t", TensorProto.INT64, [2])],
    )  # fmt: skip
    else_g = helper.make_graph(
        [n("Constant", [], ["e"], value=helper.make_tensor("ev", TensorProto.INT64, [2], [-1, 1]))],
        "else", [], [helper.make_tensor_value_info("e", TensorProto.INT64, [2])],
    )  # fmt: skip
    inits = {"w": _w(3, 2, 3, 3), "zero": np.array([0], np.int64), "one": np.array(1, np.int64),
             "lim": np.array(4, np.int64)}  # fmt: skip
    nodes = [
        n("Conv", ["x", "w"], ["c"], name="conv"),
        n("Shape", ["c"], ["shp"]),
        n("Gather", ["shp", "zero"], ["n"], axis=0),
        n("Equal", ["n", "one_1d"], ["is1"]),
        n("Constant", [], ["one_1d"], value=helper.make_tensor("o", TensorProto.INT64, [1], [1])),
        n("Squeeze", ["is1"], ["cond"]),
        n("If", ["cond"], ["target"], then_branch=then_g, else_branch=else_g),
        n("Slice", ["shp", "one_1d", "lim_1d"], ["chw"]),
        n("Constant", [], ["lim_1d"], value=helper.make_tensor("l", TensorProto.INT64, [1], [4])),
        n(
            "ConstantOfShape",
            ["chw"],
            ["ones"],
            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]),
        ),
        n("Range", ["one", "lim", "one"], ["rng"]),
        n("Cast", ["rng"], ["rngf"], to=TensorProto.FLOAT),
        n("ReduceSum", ["rngf"], ["six"], keepdims=0),
        n("Mul", ["c", "ones"], ["scaled"], name="scale"),
        n("Where", ["is1", "six", "six"], ["six2"]),
        n("Add", ["scaled", "six2"], ["shifted"], name="shift"),
        n("Reshape", ["shifted", "target"], ["out"], name="view"),
    ]
    nodes.insert(3, nodes.pop(4))  # the Constant before the Equal that reads it
    nodes.insert(7, nodes.pop(8))
    model = _model(nodes, inits, [1, 2, 9, 8])
    net = load_onnx(model)
    assert [node.kind for node in net.layers] == ["Conv", "Mul", "Add", "Reshape"]
    worst, compared = parity(model, _image((1, 2, 9, 8)))
    assert compared == 4 and worst <= 1e-4
    maps = feature_maps(_image((1, 2, 9, 8)), net)
    assert maps[-1][1].shape == (3 * 7 * 6,)


def test_split_gives_one_node_per_output():
    n = helper.make_node
    nodes = [
        n("Split", ["x"], ["a", "b"], axis=1, name="split"),
        n("Relu", ["a"], ["ra"], name="relu_a"),
        n("Neg", ["b"], ["nb"], name="neg_b"),
        n("Concat", ["nb", "ra"], ["out"], axis=1, name="join"),
    ]
    model = _model(nodes, {}, [1, 4, 5, 6])
    names = [layer.name for layer in plan(load_onnx(model))]
    assert names == ["split", "split:b", "relu_a", "neg_b", "join"]
    worst, compared = parity(model, _image((1, 4, 5, 6)))
    assert worst <= 1e-4 and compared == 5


def test_until_stops_at_a_node():
    net = load_onnx(DATA / "resnetish.dynamo.onnx")
    names = [node.name for node in net.layers]
    cut = load_onnx(DATA / "resnetish.dynamo.onnx", until=names[4])
    assert [node.name for node in cut.layers] == names[:5]
    with pytest.raises(UsageError, match="no node named 'nope'"):
        load_onnx(DATA / "resnetish.dynamo.onnx", until="nope")


def test_tiny_cnn_sample_on_a_real_image(astronaut):
    model = onnx.load(str(TINY))
    image = astronaut[::4, ::4] / np.float32(255)  # 128x128x3 in 0..1, as visualize feeds it
    worst, compared = parity(model, image, str(TINY))
    assert compared == len(model.graph.node) and worst <= 1e-4
    kinds = {node.op_type for node in model.graph.node}
    assert {"Conv", "BatchNormalization", "Add", "GlobalAveragePool", "Gemm", "Softmax"} <= kinds


# --------------------------------------------------------------- parameters


def _resnet18() -> onnx.ModelProto:
    """torchvision's ResNet-18 as an ONNX graph that keeps its BatchNormalization nodes."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    count = iter(range(10_000))

    def tensor(shape, name):
        inits.append(numpy_helper.from_array(rng.standard_normal(shape, np.float32) * 0.01, name))
        return name

    def conv_bn(x, cin, cout, k, stride, relu=True):
        i = next(count)
        w = tensor((cout, cin, k, k), f"conv{i}.w")
        nodes.append(helper.make_node("Conv", [x, w], [f"conv{i}"], kernel_shape=[k, k],
                                      strides=[stride] * 2, pads=[k // 2] * 4))  # fmt: skip
        bn = [tensor((cout,), f"bn{i}.{p}") for p in ("s", "b", "m")]
        var = f"bn{i}.v"
        inits.append(numpy_helper.from_array(np.ones(cout, np.float32), var))
        nodes.append(helper.make_node("BatchNormalization", [f"conv{i}", *bn, var], [f"bn{i}"]))
        if relu:
            nodes.append(helper.make_node("Relu", [f"bn{i}"], [f"relu{i}"]))
            return f"relu{i}"
        return f"bn{i}"

    x = conv_bn("x", 3, 64, 7, 2)
    nodes.append(helper.make_node("MaxPool", [x], ["pool"], kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))  # fmt: skip
    x, cin = "pool", 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            s = stride if block == 0 else 1
            y = conv_bn(conv_bn(x, cin, cout, 3, s), cout, cout, 3, 1, relu=False)
            short = conv_bn(x, cin, cout, 1, s, relu=False) if (s != 1 or cin != cout) else x
            i = next(count)
            nodes.append(helper.make_node("Add", [y, short], [f"add{i}"]))
            nodes.append(helper.make_node("Relu", [f"add{i}"], [f"out{i}"]))
            x, cin = f"out{i}", cout
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    fc = [tensor((1000, 512), "fc.w"), tensor((1000,), "fc.b")]
    nodes.append(helper.make_node("Gemm", ["flat", *fc], ["logits"], transB=1))
    graph = helper.make_graph(
        nodes, "resnet18",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])],
        initializer=inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_resnet18_parameters_as_pytorch_counts_them():
    layers = plan(load_onnx(_resnet18()))
    assert sum(layer.params for layer in layers) == 11_689_512
    assert sum(layer.buffers for layer in layers) == 2 * 4800  # running mean and var
    assert layers[-1].out_shape == (1000,)
    macs = sum(layer.macs for layer in layers)
    assert 1.80e9 < macs < 1.83e9  # torchvision's ResNet-18: 1.81 G multiply-adds
    conv1 = layers[0]
    assert conv1.out_shape == (64, 112, 112) and conv1.rf == 7 and conv1.jump == 2


# ---------------------------------------------------------------- channels last


@pytest.mark.parametrize("declared", [[1, 20, 24, 3], [1, "H", "W", 3]])
def test_a_channels_last_input_is_fed_as_the_model_declares_it(declared):
    # TensorFlow exports: an (N, H, W, C) input, then a Transpose to NCHW for the convs
    n = helper.make_node
    nodes = [n("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2], name="to_nchw"),
             n("Conv", ["t", "w"], ["c"], pads=[1] * 4, name="conv"),
             n("Relu", ["c"], ["out"], name="relu")]  # fmt: skip
    model = _model(nodes, {"w": _w(4, 3, 3, 3)}, declared)
    net = load_onnx(model, input_size=None if "H" not in declared else "20x24")
    assert net.input_shape == (3, 20, 24) and net.input_channels == 3
    assert net.fixed_input == ("H" not in declared)
    x = np.random.default_rng(1).random((20, 24, 3), dtype=np.float32)
    maps = feature_maps(x, net)
    assert [layer.name for layer, _ in maps] == ["to_nchw", "conv", "relu"]
    np.testing.assert_array_equal(maps[0][1], x.transpose(2, 0, 1))  # the model's own NCHW
    ref = ort_values(model, x[None], ["t", "c", "out"])
    for (_, got), want in zip(maps, ref.values(), strict=True):
        assert np.abs(got - want[0]).max() <= 1e-4 * np.abs(want).max()


# ---------------------------------------------------------------- memory


def test_the_weights_are_held_once_as_arrays(tmp_path):
    n = helper.make_node
    w = _w(64, 3, 7, 7)  # 37 KB of weights
    nodes = [n("Conv", ["x", "w"], ["c"], pads=[3] * 4), n("Relu", ["c"], ["out"])]
    model = _model(nodes, {"w": w}, [1, 3, "H", "W"])
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    before = model.SerializeToString()
    for source in (path, model):
        net = load_onnx(source, input_size="20x24")
        kept = net.opened[0]
        assert kept is not model and kept.ByteSize() < 2000  # names and shapes, no data
        assert [(t.name, list(t.dims)) for t in kept.graph.initializer] == [("w", [64, 3, 7, 7])]
        conv = net.layers[0].options["onnx"].consts["w"]
        np.testing.assert_array_equal(conv, w)
        again = net.at_shape("9x11").layers[0].options["onnx"].consts["w"]
        assert again is conv  # a refold at another size reuses the array, no second copy
    assert model.SerializeToString() == before  # the caller's model is left as it was
    x = np.random.default_rng(0).random((20, 24, 3), dtype=np.float32)
    ref = ort_values(model, x.transpose(2, 0, 1)[None], ["out"])["out"][0]
    got = feature_maps(x, load_onnx(path))[-1][1]
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


# ---------------------------------------------------------------- bad input


def test_missing_onnx_package_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(UsageError, match=r"pip install 'convtool\[onnx\]'"):
        load_net(DATA / "lenet.ts.onnx")


def _opset10():
    node = helper.make_node("Relu", ["x"], ["out"])
    return _model([node], {}, [1, 1, 4, 4], opset=10)


def test_bad_models_are_one_line_errors(tmp_path):
    cases = {
        "binary.onnx": bytes(range(256)) * 8,
        "truncated.onnx": (DATA / "vggish.ts.onnx").read_bytes()[:3000],
        "empty.onnx": b"",
        "tensor.onnx": numpy_helper.from_array(np.ones(3, np.float32)).SerializeToString(),
        "text.onnx": b"[[layers]]\ntype = 'relu'\n",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UsageError, match="not an ONNX model") as err:
            load_net(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "old.onnx").write_bytes(_opset10().SerializeToString())
    with pytest.raises(UsageError, match="opset 10 is older than 11"):
        load_net(tmp_path / "old.onnx")


def test_dynamic_input_needs_a_size():
    with pytest.raises(UsageError, match="dynamic size .*input-size"):
        plan(load_net(TINY))
    layers = plan(load_net(TINY), "64x48x3")
    assert layers[0].out_shape == (8, 64, 48)
    with pytest.raises(UsageError, match="does not fit"):
        plan(load_net(DATA / "vggish.ts.onnx"), "30x30x3")


def test_unsupported_operator_names_node_and_lists_the_supported():
    node = helper.make_node("Hardmax", ["x"], ["out"], name="hard_part")
    with pytest.raises(UsageError, match="node hard_part: operator Hardmax is not supported; "
                       "supported: .*Conv.*MaxPool"):  # fmt: skip
        load_onnx(_model([node], {}, [1, 1, 4, 4]))


def test_weights_of_the_wrong_shape_name_the_node():
    node = helper.make_node("Conv", ["x", "w"], ["out"], name="c1", pads=[1, 1, 1, 1])
    model = _model([node], {"w": _w(4, 2, 3, 3)}, [1, 3, 8, 8])
    with pytest.raises(UsageError, match=r"'c1' \(Conv\): weight \(4, 2, 3, 3\) does not fit 3"):
        plan(load_onnx(model))
    flat = helper.make_node("Flatten", ["x"], ["f"])
    fc = helper.make_node("Gemm", ["f", "w"], ["out"], name="fc", transB=1)
    with pytest.raises(UsageError, match=r"fc.* \(Gemm\): .*(takes 5 inputs, got 6|mismatch)"):
        plan(load_onnx(_model([flat, fc], {"w": _w(4, 5)}, [1, 6, 1, 1])))
