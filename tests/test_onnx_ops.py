"""Every ONNX operator against onnxruntime on single-node models.

Each case builds a one-node model with ``onnx.helper`` (all inputs as graph
inputs), runs it in onnxruntime and through :data:`convtool.onnx_ops.ONNX_OPS`,
and requires max abs error <= 1e-4 of the largest value (exact for integer
shape arithmetic).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from convtool.errors import UsageError  # noqa: E402
from convtool.network.onnx_ops import ONNX_OPS, _fast_pool, _pool_nd  # noqa: E402

_NP2ONNX = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.bool_): TensorProto.BOOL,
}


def _ort_run(op, inputs, attrs, opset, n_outputs):
    names = [f"in{i}" if a is not None else "" for i, a in enumerate(inputs)]
    outs = [f"out{i}" for i in range(n_outputs)]
    node = helper.make_node(op, names, outs, **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info(n, _NP2ONNX[a.dtype], a.shape)
            for n, a in zip(names, inputs, strict=True)
            if a is not None
        ],
        [onnx.ValueInfoProto(name=o) for o in outs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = {n: a for n, a in zip(names, inputs, strict=True) if a is not None}
    return sess.run(None, feed)


def check(op, inputs, attrs=None, opset=13, n_outputs=1):
    """Run op both ways and compare; return convtool's outputs."""
    attrs = attrs or {}
    inputs = [None if a is None else np.asarray(a) for a in inputs]
    want = _ort_run(op, inputs, attrs, opset, n_outputs)
    ours_attrs = {
        k: onnx.numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else v
        for k, v in attrs.items()
    }
    got = ONNX_OPS[op](list(inputs), ours_attrs, opset, n_outputs)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        g = np.asarray(g)
        assert g.shape == w.shape, (op, g.shape, w.shape)
        if w.dtype.kind in "biu":
            assert g.dtype == w.dtype, (op, g.dtype, w.dtype)
            np.testing.assert_array_equal(g, w)
        else:
            scale = max(float(np.abs(w).max(initial=0.0)), 1.0)
            err = float(np.abs(g.astype(np.float64) - w).max(initial=0.0))
            assert err <= 1e-4 * scale, (op, err, scale)
    return got


def rnd(*shape, seed=0, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def i64(*values):
    return np.asarray(values, np.int64)


# ---------------------------------------------------------------------- Conv


@pytest.mark.parametrize(
    "shape, wshape, attrs",
    [
        ((1, 3, 11, 13), (4, 3, 3, 3), {}),
        ((1, 3, 11, 13), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
        ((1, 3, 11, 13), (6, 3, 5, 3), {"pads": [2, 0, 1, 3], "strides": [2, 2]}),
        ((1, 3, 12, 9), (4, 3, 3, 3), {"strides": [2, 3], "pads": [1, 2, 0, 1]}),
        ((1, 4, 13, 12), (4, 2, 3, 3), {"group": 2, "dilations": [2, 2], "pads": [2, 2, 2, 2]}),
        ((1, 4, 13, 12), (4, 1, 3, 3), {"group": 4, "dilations": [1, 2], "pads": [1, 1, 2, 2]}),
        ((1, 6, 7, 7), (12, 1, 3, 3), {"group": 6, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
        ((1, 8, 9, 9), (5, 8, 1, 1), {}),
        ((1, 3, 10, 11), (4, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
        ((1, 3, 10, 11), (4, 3, 4, 4), {"auto_pad": "SAME_LOWER", "strides": [3, 2]}),
        ((1, 3, 10, 11), (4, 3, 3, 2), {"auto_pad": "VALID"}),
        ((2, 3, 9, 8), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
        ((1, 3, 17), (4, 3, 5), {"pads": [2, 1], "strides": [2]}),
        ((1, 2, 5, 6, 7), (3, 2, 3, 2, 3), {"pads": [1, 0, 1, 0, 1, 1], "strides": [1, 2, 2]}),
    ],
)
@pytest.mark.parametrize("bias", [False, True])
def test_conv(shape, wshape, attrs, bias):
    inputs = [rnd(*shape), rnd(*wshape, seed=1)]
    if bias:
        inputs.append(rnd(wshape[0], seed=2))
    check("Conv", inputs, attrs, opset=11)


@settings(max_examples=25, deadline=None)
@given(
    c=st.integers(1, 4),
    m=st.integers(1, 4),
    h=st.integers(5, 14),
    w=st.integers(5, 14),
    k=st.integers(1, 4),
    s=st.integers(1, 3),
    d=st.integers(1, 2),
    pads=st.lists(st.integers(0, 3), min_size=4, max_size=4),
    grouped=st.booleans(),
)
def test_conv_random(c, m, h, w, k, s, d, pads, grouped):
    g = c if grouped else 1
    m = m * g
    if (k - 1) * d + 1 > min(h + pads[0] + pads[2], w + pads[1] + pads[3]):
        return
    attrs = {"strides": [s, s], "dilations": [d, d], "pads": pads, "group": g}
    check("Conv", [rnd(1, c, h, w), rnd(m, c // g, k, k, seed=1)], attrs, opset=13)


# --------------------------------------------------------------- activations


@pytest.mark.parametrize(
    "op", ["Relu", "Sigmoid", "Tanh", "Exp", "Neg", "Abs", "Softplus", "HardSigmoid",
           "HardSwish", "Elu", "Selu", "Floor", "Ceil"],
)  # fmt: skip
def test_unary(op):
    check(op, [rnd(1, 3, 5, 7, low=-4, high=4)], opset=14)  # HardSwish came in 14


@pytest.mark.parametrize("op", ["Sqrt", "Reciprocal", "Log"])
def test_unary_positive(op):
    check(op, [rnd(1, 3, 5, 7, low=0.1, high=4)])


def test_activation_attributes():
    x = rnd(1, 3, 5, 7, low=-4, high=4)
    check("HardSigmoid", [x], {"alpha": 0.25, "beta": 0.4})
    check("Elu", [x], {"alpha": 0.5})
    check("Selu", [x], {"alpha": 1.5, "gamma": 1.2})


def test_leaky_relu_and_prelu():
    check("LeakyRelu", [rnd(1, 3, 5, 7)], {"alpha": 0.2})
    check("LeakyRelu", [rnd(1, 3, 5, 7)])
    check("PRelu", [rnd(1, 3, 5, 7), rnd(3, 1, 1, seed=3)], opset=11)
    check("PRelu", [rnd(1, 3, 5, 7), rnd(1, seed=3)], opset=16)


@pytest.mark.parametrize("opset", [11, 13])
def test_clip(opset):
    x = rnd(1, 3, 5, 7, low=-8, high=8)
    check("Clip", [x, np.float32(0), np.float32(6)], opset=opset)
    check("Clip", [x, None, np.float32(1)], opset=opset)
    check("Clip", [x, np.float32(-1)], opset=opset)
    check("Clip", [x], opset=opset)


# ------------------------------------------------------------------- pooling


POOLS = [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [2, 3], "strides": [1, 2], "pads": [0, 1, 1, 0]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 0, 2, 1], "ceil_mode": 1},
    {"kernel_shape": [4, 4], "strides": [3, 3], "pads": [2, 2, 2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"kernel_shape": [2, 2], "auto_pad": "SAME_LOWER", "strides": [2, 2]},
    {"kernel_shape": [5, 5], "strides": [1, 1], "pads": [2, 2, 2, 2]},
]


@pytest.mark.parametrize("attrs", POOLS)
@pytest.mark.parametrize("shape", [(1, 2, 11, 13), (1, 3, 8, 8)])
def test_max_pool(attrs, shape):
    check("MaxPool", [rnd(*shape)], attrs, opset=12)


@pytest.mark.parametrize("attrs", POOLS)
@pytest.mark.parametrize("include", [0, 1])
def test_average_pool(attrs, include):
    attrs = dict(attrs, count_include_pad=include)
    check("AveragePool", [rnd(1, 2, 11, 13)], attrs, opset=11)


def test_pool_dilations_and_other_ranks():
    x = rnd(1, 2, 12, 11)
    check("MaxPool", [x], {"kernel_shape": [3, 2], "dilations": [2, 3], "pads": [1, 0, 1, 1]})
    check("MaxPool", [x], {"kernel_shape": [3, 3], "dilations": [2, 2], "ceil_mode": 1,
                           "strides": [2, 2]})  # fmt: skip
    check("AveragePool", [x], {"kernel_shape": [3, 3], "dilations": [2, 1]}, opset=19)
    check("MaxPool", [rnd(1, 3, 17)], {"kernel_shape": [3], "strides": [2], "pads": [1, 1]})
    check(
        "AveragePool", [rnd(1, 2, 6, 7, 5)], {"kernel_shape": [2, 3, 2], "pads": [0, 1, 1, 1, 1, 0]}
    )


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(3, 15),
    w=st.integers(3, 15),
    k=st.integers(1, 4),
    s=st.integers(1, 3),
    p=st.integers(0, 2),
    ceil=st.integers(0, 1),
    avg=st.booleans(),
    include=st.integers(0, 1),
)
def test_pool_random(h, w, k, s, p, ceil, avg, include):
    if p > k // 2 or k > min(h, w) + 2 * p:
        return
    attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [p] * 4, "ceil_mode": ceil}
    if avg:
        attrs["count_include_pad"] = include
    x = rnd(1, 2, h, w)
    check("AveragePool" if avg else "MaxPool", [x], attrs, opset=13)
    # convtool.pooling.pool (when the geometry fits it) and the numpy loop agree
    args = ("avg" if avg else "max", [k, k], [s, s], [1, 1], [p, p], [p, p], ceil, include)
    fast = _fast_pool(x, *args)
    assert fast is not None
    np.testing.assert_allclose(fast, _pool_nd(x, *args), rtol=1e-5, atol=1e-6)


def test_global_pools_and_reduce():
    x = rnd(1, 3, 7, 5)
    check("GlobalAveragePool", [x])
    check("GlobalMaxPool", [x])
    check("ReduceMean", [x], {"axes": [2, 3], "keepdims": 1}, opset=13)
    check("ReduceMean", [x], {"axes": [-1, -2], "keepdims": 0}, opset=11)
    check("ReduceMax", [x], {"axes": [1]}, opset=13)
    check("ReduceMean", [x, i64(2, 3)], {"keepdims": 1}, opset=18)
    check("ReduceMax", [x, i64(-1)], {"keepdims": 0}, opset=18)
    check("ReduceMean", [x], {"keepdims": 0}, opset=18)
    check("ReduceMax", [x], {}, opset=13)


# ------------------------------------------------------------- normalisation


def test_batch_normalization():
    x = rnd(1, 4, 6, 5)
    stats = [rnd(4, seed=1), rnd(4, seed=2), rnd(4, seed=3), rnd(4, seed=4, low=0.1, high=2)]
    check("BatchNormalization", [x, *stats], opset=11)
    check("BatchNormalization", [x, *stats], {"epsilon": 1e-3}, opset=15)
    check("BatchNormalization", [rnd(2, 4), *stats], opset=15)


@pytest.mark.parametrize("size", [1, 3, 5])
def test_lrn(size):
    x = rnd(1, 7, 4, 5, low=-3, high=3)
    check("LRN", [x], {"size": size, "alpha": 1e-2, "beta": 0.75, "bias": 2.0})


# ---------------------------------------------------------------- arithmetic


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize(
    "sa, sb", [((1, 3, 4, 5), (1, 3, 4, 5)), ((1, 3, 4, 5), (3, 1, 1)), ((1, 3, 4, 5), ()),
               ((5,), (1, 3, 4, 5)), ((2, 1, 5), (1, 4, 1))],
)  # fmt: skip
def test_binary(op, sa, sb):
    check(op, [rnd(*sa), rnd(*sb, seed=1, low=0.5, high=2)])


def test_pow_and_int_arithmetic():
    check("Pow", [rnd(1, 3, 4, low=0.1, high=3), np.float32(0.75)])
    check("Pow", [rnd(1, 3, 4, low=-2, high=2), np.float32(2.0)])
    check("Div", [i64(7, -7, 9), i64(2, 2, -4)])
    check("Mul", [i64(3, 4), i64(5)])


# -------------------------------------------------------------------- shapes


def test_concat_split():
    a, b = rnd(1, 2, 3, 4), rnd(1, 5, 3, 4, seed=1)
    check("Concat", [a, b], {"axis": 1})
    check("Concat", [i64(1, 2), i64(3)], {"axis": 0})
    x = rnd(1, 6, 3, 4)
    check("Split", [x], {"axis": 1, "split": [2, 4]}, opset=11, n_outputs=2)
    check("Split", [x], {"axis": 1}, opset=11, n_outputs=3)
    check("Split", [x, i64(1, 5)], {"axis": 1}, opset=13, n_outputs=2)
    check("Split", [x], {"axis": -1}, opset=13, n_outputs=2)
    check("Split", [rnd(1, 7, 2)], {"axis": 1, "num_outputs": 3}, opset=18, n_outputs=3)


def test_reshapes():
    x = rnd(2, 3, 4, 5)
    check("Flatten", [x])
    check("Flatten", [x], {"axis": 0})
    check("Flatten", [x], {"axis": 3})
    check("Reshape", [x, i64(0, -1)])
    check("Reshape", [x, i64(0, 0, -1)])
    check("Reshape", [x, i64(-1, 20)], {"allowzero": 1}, opset=14)
    check("Squeeze", [rnd(1, 3, 1, 2)], {"axes": [0, 2]}, opset=11)
    check("Squeeze", [rnd(1, 3, 1, 2), i64(-2)], opset=13)
    check("Squeeze", [rnd(1, 3, 1, 2)], opset=13)
    check("Unsqueeze", [rnd(3, 2)], {"axes": [0, 3]}, opset=11)
    check("Unsqueeze", [rnd(3, 2), i64(-1, 0)], opset=13)
    check("Transpose", [x], {"perm": [0, 2, 3, 1]})
    check("Transpose", [x])


def test_gemm_matmul():
    a, b, c = rnd(3, 5), rnd(5, 4, seed=1), rnd(4, seed=2)
    check("Gemm", [a, b, c])
    check("Gemm", [a, b.T.copy(), c], {"transB": 1, "alpha": 0.5, "beta": 2.0})
    check("Gemm", [a.T.copy(), b], {"transA": 1}, opset=11)
    check("Gemm", [a, b, rnd(3, 1, seed=3)], {"beta": 0.0})
    check("MatMul", [a, b])
    check("MatMul", [rnd(2, 3, 5), b])
    check("MatMul", [rnd(5), b])


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axis", [None, 1, -1, 2])
def test_softmax(opset, axis):
    attrs = {} if axis is None else {"axis": axis}
    check("Softmax", [rnd(2, 3, 4, low=-5, high=5)], attrs, opset=opset)


def test_softmax_axis_changed_at_13():
    x = rnd(1, 3, 2, low=-5, high=5)
    old = check("Softmax", [x], {}, opset=11)[0]
    new = check("Softmax", [x], {}, opset=13)[0]
    assert not np.allclose(old, new)


def test_identity_dropout_constant():
    x = rnd(1, 3, 4)
    check("Identity", [x])
    check("Dropout", [x], opset=11)
    check("Dropout", [x], opset=13, n_outputs=2)
    tensor = helper.make_tensor("v", TensorProto.FLOAT, [2], [1.5, -2.0])
    want = _ort_run("Constant", [], {"value": tensor}, 13, 1)[0]
    got = ONNX_OPS["Constant"]([], {"value": onnx.numpy_helper.to_array(tensor)}, 13, 1)[0]
    np.testing.assert_array_equal(got, want)
    check("Constant", [], {"value_ints": [1, 2]}, opset=13)
    check("Constant", [], {"value_float": 2.5}, opset=13)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(mode):
    x = rnd(1, 2, 5, 6)
    check("Pad", [x, i64(0, 0, 1, 2, 0, 0, 2, 1)], {"mode": mode}, opset=11)
    check("Pad", [x, i64(0, 0, 0, -1, 0, 0, 2, 3)], {"mode": mode}, opset=13)
    if mode == "constant":
        check("Pad", [x, i64(0, 0, 1, 1, 0, 0, 1, 1), np.float32(3.5)], {"mode": mode}, opset=13)
    check("Pad", [x, i64(1, 2, 3, 0), None, i64(2, -1)], {"mode": mode}, opset=18)


# ------------------------------------------------------- shape arithmetic


def test_shape_arithmetic():
    x = rnd(1, 3, 7, 5)
    check("Shape", [x])
    check("Shape", [x], {"start": 1, "end": -1}, opset=15)
    check("Gather", [i64(1, 3, 7, 5), i64(0)])
    check("Gather", [i64(1, 3, 7, 5), np.asarray(-1, np.int64)])
    check("Gather", [x, i64(2, 0)], {"axis": 1})
    check("Slice", [i64(1, 3, 7, 5), i64(0), i64(2)])
    check("Slice", [x, i64(1, -3), i64(1000, -1), i64(1, 3), i64(1, 1)])
    check("Slice", [x, i64(-1), i64(-1000), i64(2), i64(-2)])
    check("Slice", [x, i64(5), i64(0), i64(-1), i64(-1)])
    check("Slice", [x, i64(0), i64(np.iinfo(np.int64).max), i64(3), i64(2)])
    check("ConstantOfShape", [i64(2, 3)])
    check("ConstantOfShape", [i64(2, 3)],
          {"value": helper.make_tensor("v", TensorProto.INT64, [1], [7])})  # fmt: skip
    check("Cast", [i64(1, 2, 3)], {"to": TensorProto.FLOAT})
    check("Cast", [rnd(3, low=-3, high=3)], {"to": TensorProto.INT64})
    check("Equal", [i64(1, 2, 3), i64(1, 0, 3)])
    check("Where", [np.array([True, False]), i64(1, 2), i64(3, 4)])
    check("Where", [np.array([[True], [False]]), rnd(2, 3), rnd(3, seed=1)])
    check("Range", [np.asarray(0, np.int64), np.asarray(7, np.int64), np.asarray(2, np.int64)])
    check("Range", [np.float32(1), np.float32(-2), np.float32(-0.5)])
    check("Expand", [rnd(3, 1), i64(2, 3, 4)])


def test_bad_attributes_are_usage_errors():
    with pytest.raises(UsageError, match="pads"):
        ONNX_OPS["Conv"]([rnd(1, 1, 5, 5), rnd(1, 1, 3, 3)], {"pads": [1, 1]}, 13, 1)
    with pytest.raises(UsageError, match="Split"):
        ONNX_OPS["Split"]([rnd(1, 6), i64(2, 2)], {"axis": 1}, 13, 2)
    with pytest.raises(UsageError, match="training"):
        bn = ONNX_OPS["BatchNormalization"]
        bn([rnd(1, 2, 3, 3)] + [rnd(2)] * 4, {"training_mode": 1}, 15, 1)


# ----------------------------------------------------------- Erf, Gelu, Resize


def test_erf_and_gelu():
    x = rnd(1, 3, 9, 11, low=-5, high=5)
    check("Erf", [x])
    check("Erf", [np.linspace(-6, 6, 1001, dtype=np.float32)])
    for approximate in ("none", "tanh"):
        check("Gelu", [x], {"approximate": approximate}, opset=20)


F32 = np.float32


CTM = "coordinate_transformation_mode"


@pytest.mark.parametrize(
    "attrs",
    [
        # nn.Upsample(scale_factor=2) as the TorchScript exporter writes it
        {"mode": "nearest", CTM: "asymmetric", "nearest_mode": "floor"},
        {"mode": "nearest"},  # half_pixel, round_prefer_floor
        {"mode": "nearest", "nearest_mode": "round_prefer_ceil"},
        {"mode": "nearest", "nearest_mode": "ceil", CTM: "align_corners"},
        {"mode": "linear"},  # half_pixel: interpolate(bilinear, align_corners=False)
        {"mode": "linear", CTM: "pytorch_half_pixel"},
        {"mode": "linear", CTM: "align_corners"},
        {"mode": "linear", CTM: "asymmetric"},
    ],
)
@pytest.mark.parametrize(
    "scales, sizes",
    [
        ([1, 1, 2, 2], None),
        ([1, 1, 3, 1.5], None),
        ([1, 1, 0.5, 0.75], None),
        (None, [1, 3, 12, 4]),  # up on one axis, down on the other
        (None, [1, 3, 1, 13]),
    ],
)
@pytest.mark.parametrize("opset", [11, 13])
def test_resize(attrs, scales, sizes, opset):
    x = rnd(1, 3, 5, 7, seed=3)
    empty = np.zeros(0, F32)
    if opset == 11:  # roi and scales are required inputs (empty when unused)
        inputs = [x, empty, empty if scales is None else np.asarray(scales, F32)]
    else:
        inputs = [x, None, None if scales is None else np.asarray(scales, F32)]
    if sizes is not None:
        inputs.append(i64(*sizes))
    check("Resize", inputs, attrs, opset=opset)


def test_resize_axes_and_symmetric_half_pixel():
    x = rnd(1, 2, 6, 9, seed=4)
    check("Resize", [x, None, np.asarray([1.5, 0.5], F32)], {"mode": "linear", "axes": [2, 3]},
          opset=18)  # fmt: skip
    check("Resize", [x, None, None, i64(4, 13)], {"mode": "nearest", "axes": [-2, -1]}, opset=18)
    check("Resize", [x, None, None, i64(1, 2, 4, 13)],
          {"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric"},
          opset=19)  # fmt: skip


def test_resize_refuses_what_it_does_not_do():
    x = rnd(1, 1, 4, 4)
    up = np.asarray([1, 1, 2, 2], F32)
    for attrs, message in (
        ({"mode": "cubic"}, "mode 'cubic'"),
        ({"mode": "linear", "antialias": 1}, "antialias"),
        ({"coordinate_transformation_mode": "tf_crop_and_resize"}, "tf_crop_and_resize"),
    ):
        with pytest.raises(UsageError, match=message):
            ONNX_OPS["Resize"]([x, None, up], attrs, 18, 1)


def test_conv_followed_by_relu_hands_over_its_relu_map(tmp_path):
    """A Conv whose map a Relu reads writes the ReLU with its product; the Relu's map
    is that array, equal to max(conv, 0), and nothing is left waiting after the walk."""
    from onnx import TensorProto, helper, numpy_helper

    from convtool.network import feature_maps, load_net, onnx_import

    rng = np.random.default_rng(4)
    w = numpy_helper.from_array(rng.standard_normal((16, 3, 3, 3)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Add", ["c", "r"], ["y"], name="add"),  # the conv map read again
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 20, 24])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph(nodes, "m", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 13)])  # fmt: skip
    path = tmp_path / "conv_relu.onnx"
    path.write_bytes(model.SerializeToString())
    net = load_net(path)
    img = rng.standard_normal((20, 24, 3)).astype(np.float32)
    maps = {layer.name: a for layer, a in feature_maps(img, net)}
    np.testing.assert_array_equal(maps["relu"], np.maximum(maps["conv"], 0))
    np.testing.assert_allclose(maps["add"], maps["conv"] + maps["relu"], rtol=1e-6)
    assert not onnx_import._RELU_READY
