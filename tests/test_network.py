# ruff: noqa: E501  (tables of specs and messages read best on one line)
"""Network specs, planning arithmetic and layers, against plain numpy references.

The conv reference implements torch.nn.functional.conv2d semantics (cross-
correlation; output channel m of group g sums over that group's C/groups input
channels; bias; stride, zero padding, dilation) as a loop over output pixels,
so it shares nothing with convtool's im2col or filtering paths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

from convtool.errors import UsageError
from convtool.network import (
    conv2d,
    feature_maps,
    load_net,
    parse_layers,
    parse_shape,
    plan,
    run_layer,
)

NETS = Path(__file__).resolve().parent.parent / "samples" / "nets"


# ----------------------------------------------------------------- references


def ref_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv2d semantics, one output pixel at a time."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    assert cg * groups == c and m % groups == 0
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((m, oh, ow))
    mg = m // groups
    for o in range(m):
        g = o // mg
        for y in range(oh):
            for xx in range(ow):
                acc = 0.0
                for ci in range(cg):
                    for i in range(kh):
                        for j in range(kw):
                            acc += (
                                w[o, ci, i, j]
                                * xp[
                                    g * cg + ci,
                                    y * stride + i * dilation,
                                    xx * stride + j * dilation,
                                ]
                            )
                out[o, y, xx] = acc + (0.0 if b is None else b[o])
    return out


def ref_max_pool(x, f, s):
    c, h, w = x.shape
    oh, ow = (h - f) // s + 1, (w - f) // s + 1
    out = np.empty((c, oh, ow))
    for y in range(oh):
        for xx in range(ow):
            out[:, y, xx] = x[:, y * s : y * s + f, xx * s : xx * s + f].max(axis=(1, 2))
    return out


def ref_avg_pool(x, f, s):
    c, h, w = x.shape
    oh, ow = (h - f) // s + 1, (w - f) // s + 1
    out = np.empty((c, oh, ow))
    for y in range(oh):
        for xx in range(ow):
            out[:, y, xx] = x[:, y * s : y * s + f, xx * s : xx * s + f].mean(axis=(1, 2))
    return out


def rng_arrays(seed, c, h, w, m, cg, k):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    wt = rng.standard_normal((m, cg, k, k)).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    return x, wt, b


# --------------------------------------------------------------------- conv2d

CONV_CASES = [
    # c, m, k, stride, padding, dilation, groups
    (1, 4, 3, 1, 0, 1, 1),
    (3, 5, 3, 1, 1, 1, 1),
    (4, 6, 3, 2, 1, 1, 2),  # grouped
    (4, 4, 3, 1, 1, 1, 4),  # depthwise
    (4, 8, 3, 1, 0, 1, 4),  # depthwise, 2 filters per channel
    (6, 3, 1, 1, 0, 1, 1),  # 1x1
    (3, 2, 5, 2, 2, 1, 1),  # stride 2
    (2, 3, 3, 1, 2, 2, 1),  # dilation 2
    (2, 2, 4, 1, 0, 1, 1),  # even kernel
    (3, 3, 3, 3, 0, 2, 3),  # stride 3, dilation 2, depthwise
    (2, 2, 9, 1, 4, 1, 1),  # large kernel (bank path under auto)
]


@pytest.mark.parametrize("method", ["matmul", "bank", "auto"])
@pytest.mark.parametrize("c,m,k,stride,padding,dilation,groups", CONV_CASES)
def test_conv2d_matches_torch_reference(method, c, m, k, stride, padding, dilation, groups):
    x, w, b = rng_arrays(c * 100 + m * 10 + k, c, 13, 11, m, c // groups, k)
    got = conv2d(
        x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups, method=method
    )
    want = ref_conv2d(x, w, b, stride, padding, dilation, groups)
    assert got.shape == want.shape
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(
    groups=st.sampled_from([1, 2, 3]),
    cg=st.integers(1, 3),
    mg=st.integers(1, 3),
    k=st.integers(1, 5),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    padding=st.integers(0, 2),
    h=st.integers(6, 14),
    w=st.integers(6, 14),
    seed=st.integers(0, 1000),
)
def test_conv2d_random_shapes(groups, cg, mg, k, stride, dilation, padding, h, w, seed):
    c, m = cg * groups, mg * groups
    x, wt, b = rng_arrays(seed, c, h, w, m, cg, k)
    if h + 2 * padding < dilation * (k - 1) + 1 or w + 2 * padding < dilation * (k - 1) + 1:
        return
    want = ref_conv2d(x, wt, b, stride, padding, dilation, groups)
    for method in ("matmul", "bank"):
        got = conv2d(
            x,
            wt,
            b,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            method=method,
        )
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "pad,scipy_mode",
    [("reflect", "mirror"), ("replicate", "nearest"), ("symmetric", "reflect"), ("wrap", "grid-wrap"), ("zero", "constant")],
)  # fmt: skip
def test_conv_layer_pad_modes_match_scipy(camera, pad, scipy_mode):
    """A one-filter conv layer with a padded mode keeps the size and equals scipy's correlate."""
    img = camera[100:180, 200:290]
    rng = np.random.default_rng(3)
    w = rng.standard_normal((1, 1, 5, 5)).astype(np.float32)
    net = load_net(f"conv(random:1,size=5,pad={pad})")
    (layer,) = plan(net, (1,) + img.shape)
    layer.weight[...] = w  # planned weights are used as they are
    got = run_layer(layer, img[None])[0]
    want = ndi.correlate(img.astype(np.float64), w[0, 0].astype(np.float64), mode=scipy_mode)
    assert got.shape == img.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-2)


def test_conv_layer_bank_on_real_image_matches_scipy(camera):
    """conv(sobel-x) on a gray image is scipy's correlate with the Sobel-x weights."""
    from convtool.kernels import kernel

    ((layer, out),) = feature_maps(camera, "conv(sobel-x, pad=reflect)")
    want = ndi.correlate(
        camera.astype(np.float64), kernel("sobel-x").astype(np.float64), mode="mirror"
    )
    assert layer.labels == ("sobel-x",)
    assert layer.params == 10
    np.testing.assert_allclose(out[0], want, atol=1e-2)


def test_named_filters_on_colour_act_on_the_channel_mean(astronaut):
    img = astronaut[:64, :64]
    ((layer, out),) = feature_maps(img, "conv(laplacian)")
    gray = img.mean(axis=2)
    from convtool.kernels import kernel

    want = ndi.correlate(gray.astype(np.float64), kernel("laplacian").astype(np.float64))[
        1:-1, 1:-1
    ]
    assert layer.weight.shape == (1, 3, 3, 3)
    np.testing.assert_allclose(out[0], want, atol=1e-2)


def test_depthwise_named_filters_make_one_map_per_channel_and_filter(astronaut):
    img = astronaut[:40, :50]
    ((layer, out),) = feature_maps(img, "conv(edges, groups=depthwise)")
    assert out.shape == (9, 38, 48)
    assert layer.labels[:3] == ("sobel-x@g0", "sobel-y@g0", "laplacian@g0")
    from convtool.kernels import kernel

    want = ndi.correlate(img[..., 2].astype(np.float64), kernel("sobel-y").astype(np.float64))
    np.testing.assert_allclose(out[7], want[1:-1, 1:-1], atol=1e-2)


# ------------------------------------------------------------ other layer types


def test_activations_match_numpy():
    rng = np.random.default_rng(0)
    img = rng.standard_normal((20, 30)).astype(np.float32) * 3
    x = img[None].astype(np.float64)
    maps = feature_maps(img, "relu leaky_relu(0.2) tanh sigmoid abs")
    want_relu = np.maximum(x, 0)
    np.testing.assert_allclose(maps[0][1], want_relu, atol=1e-6)
    want_leaky = want_relu  # relu output is already >= 0
    np.testing.assert_allclose(maps[1][1], want_leaky, atol=1e-6)
    np.testing.assert_allclose(maps[2][1], np.tanh(want_leaky), atol=1e-6)
    np.testing.assert_allclose(maps[3][1], 1 / (1 + np.exp(-np.tanh(want_leaky))), atol=1e-6)
    (leaky,) = feature_maps(img, "leaky_relu(alpha=0.2)")
    np.testing.assert_allclose(leaky[1], np.where(x >= 0, x, 0.2 * x), atol=1e-6)
    (sig,) = feature_maps(img, "sigmoid")
    np.testing.assert_allclose(sig[1], 1 / (1 + np.exp(-x)), atol=1e-6)
    (ab,) = feature_maps(img, "abs")
    np.testing.assert_allclose(ab[1], np.abs(x), atol=0)


def test_norm_standardises_each_channel(astronaut):
    ((_, out),) = feature_maps(astronaut[:50, :60], "norm")
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 1, atol=1e-3)


@pytest.mark.parametrize("f,s", [(2, 2), (3, 2), (3, 1)])
def test_max_and_avg_pool_layers_match_reference(astronaut, f, s):
    img = astronaut[:45, :37]
    x = np.moveaxis(img, -1, 0).astype(np.float64)
    ((_, mx),) = feature_maps(img, f"pool(max,{f},{s})")
    ((_, av),) = feature_maps(img, f"pool(avg,{f},{s})")
    np.testing.assert_allclose(mx, ref_max_pool(x, f, s), atol=0)
    np.testing.assert_allclose(av, ref_avg_pool(x, f, s), rtol=1e-5)


@pytest.mark.parametrize(
    "spec,kwargs",
    [
        ("pool(min,2)", dict(mode="min", size=2)),
        ("pool(lp,2,p=3)", dict(mode="lp", size=2, p=3.0)),
        ("pool(topleft,3)", dict(mode="topleft", size=3)),
        ("pool(stochastic,2,seed=4)", dict(mode="stochastic", size=2, seed=4)),
        ("pool(fractional,ratio=1.5,seed=2)", dict(mode="fractional", ratio=1.5, seed=2)),
        ("pool(max,3,2,pad=reflect)", dict(mode="max", size=3, stride=2, pad="reflect")),
        ("pool(avg,2,ceil=true)", dict(mode="avg", size=2, ceil=True)),
    ],
)
def test_every_pool_mode_is_convtool_pool_per_channel(astronaut, spec, kwargs):
    """Each channel goes through convtool.pooling.pool as `convtool pool` would."""
    from convtool.pooling import pool

    img = np.ascontiguousarray(np.abs(astronaut[:33, :41] - 100))
    ((layer, out),) = feature_maps(img, spec)
    want = pool(img, **kwargs)
    assert out.shape == layer.out_shape == np.moveaxis(want, -1, 0).shape
    np.testing.assert_allclose(out, np.moveaxis(want, -1, 0), atol=1e-5)


# -------------------------------------------------------------------- planning


def test_lenet_sample_has_lenet5_parameter_counts():
    layers = plan(NETS / "lenet.toml")  # its own input: 32x32x1
    convs = [layer for layer in layers if layer.kind == "conv"]
    assert [layer.params for layer in convs] == [156, 2416, 48120, 10164, 850]
    assert sum(layer.params for layer in layers) == 61706
    assert [layer.out_shape for layer in layers] == [
        (6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 10, 10), (16, 5, 5),
        (120, 1, 1), (120, 1, 1), (84, 1, 1), (84, 1, 1), (10, 1, 1),
    ]  # fmt: skip
    # receptive fields: 5, pool -> 6, +4*2 -> 14, pool -> 16, +4*4 -> 32 (the whole input)
    assert [layer.rf for layer in convs] == [5, 14, 32, 32, 32]
    assert [layer.jump for layer in layers if layer.kind == "pool"] == [2, 4]
    # MACs: 6*25*28*28 and 16*6*25*10*10
    assert convs[0].macs == 117600 and convs[1].macs == 240000
    # a fully connected C1: (32*32) inputs x (6*28*28) outputs + biases
    assert convs[0].fc_params == 1024 * 4704 + 4704
    assert convs[2].fc_params == convs[2].params  # C5 on a 5x5 map is fully connected


def test_dwsep_sample_counts():
    layers = plan(NETS / "dwsep.toml")
    stem, dw, pw = (layer for layer in layers if layer.kind == "conv")
    assert stem.out_shape == (16, 112, 112) and stem.params == 16 * 27 + 16
    assert dw.params == 16 * 9 + 16 and dw.groups == 16
    assert pw.params == 32 * 16 + 32
    assert (stem.rf, stem.jump, dw.rf, pw.rf) == (3, 2, 7, 7)
    assert dw.macs == 16 * 9 * 112 * 112


def test_edges_sample_plan():
    layers = plan(NETS / "edges.toml", "100x80x3")
    assert [layer.out_shape for layer in layers] == [
        (3, 100, 80), (3, 100, 80), (3, 50, 40), (3, 50, 40), (3, 25, 20),
    ]  # fmt: skip
    assert layers[0].params == 3 * 3 * 9 + 3
    assert layers[0].labels == ("sobel-x", "sobel-y", "laplacian")
    gauss = layers[3]
    k = gauss.weight.shape[-1]
    assert gauss.rf == 4 + (k - 1) * 2


def test_receptive_field_matches_brute_force():
    """The planned RF equals the input span that can change one output pixel."""
    spec = "conv(random:2,size=3,seed=1) pool(avg,2) conv(random:2,size=3,dilation=2,seed=2) pool(max,3,2) conv(random:1,size=3,stride=2,seed=3)"
    n = 48
    layers = plan(spec, (1, n, n))
    rng = np.random.default_rng(0)
    base = rng.random((n, n)).astype(np.float32) + 1
    ref = feature_maps(base, spec)[-1][1]
    oy, ox = (s // 2 for s in ref.shape[1:])
    touched = []
    for col in range(n):
        probe = base.copy()
        probe[:, col] += 50.0
        out = feature_maps(probe, spec)[-1][1]
        if abs(out[0, oy, ox] - ref[0, oy, ox]) > 1e-3:
            touched.append(col)
    assert touched, "no input column reaches the output"
    assert max(touched) - min(touched) + 1 == layers[-1].rf
    assert layers[-1].jump == 2 * 2 * 2


def test_inline_and_toml_give_the_same_plan(tmp_path):
    toml = tmp_path / "n.toml"
    toml.write_text(
        '[[layers]]\ntype = "conv"\nfilters = "random:8"\nsize = 3\nseed = 1\n'
        '[[layers]]\ntype = "relu"\n'
        '[[layers]]\ntype = "pool"\nmode = "max"\nsize = 2\n'
    )
    a = plan(toml, "32x32x3")
    b = plan("conv(random:8, size=3, seed=1) relu pool(max, 2)", "32x32x3")
    assert [(x.out_shape, x.params, x.rf) for x in a] == [(x.out_shape, x.params, x.rf) for x in b]
    np.testing.assert_array_equal(a[0].weight, b[0].weight)


def test_random_init_is_seeded_he_or_xavier():
    a = plan("conv(random:64,size=5,seed=7)", "40x40x16")[0].weight
    b = plan("conv(random:64,size=5,seed=7)", "40x40x16")[0].weight
    c = plan("conv(random:64,size=5,seed=8)", "40x40x16")[0].weight
    x = plan("conv(random:64,size=5,seed=7,init=xavier)", "40x40x16")[0].weight
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.std() == pytest.approx(np.sqrt(2 / (16 * 25)), rel=0.05)
    assert x.std() == pytest.approx(np.sqrt(2 / (16 * 25 + 64 * 25)), rel=0.05)


def test_inline_parser_positional_keys_and_quotes():
    net = parse_layers(
        'conv("gaussian:sigma=2,size=5", pad=reflect) leaky_relu(0.1) pool(avg, 3, 1)'
    )
    conv, leaky, pool = net.layers
    assert conv.options["filters"] == ("gaussian:sigma=2,size=5",)
    assert conv.options["pad"] == "reflect"
    assert leaky.options["alpha"] == pytest.approx(0.1)
    assert (pool.options["mode"], pool.options["size"], pool.options["stride"]) == ("avg", 3, 1)
    assert parse_layers("conv(sobel-x|sobel-y)").layers[0].options["filters"] == (
        "sobel-x",
        "sobel-y",
    )


def test_parse_shape():
    assert parse_shape("224x224x3") == (3, 224, 224)
    assert parse_shape("28x32") == (1, 28, 32)
    with pytest.raises(UsageError, match="HxW"):
        parse_shape("224")


def test_weights_from_npy_and_npz(tmp_path, astronaut):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    np.save(tmp_path / "w.npy", w)
    np.savez(tmp_path / "wb.npz", weight=w, bias=b)
    (tmp_path / "net.toml").write_text(
        '[[layers]]\ntype = "conv"\nweights = "wb.npz"\nstride = 2\n'
    )
    img = astronaut[:20, :24]
    x = np.moveaxis(img, -1, 0)
    ((layer, out),) = feature_maps(img, tmp_path / "net.toml")  # path relative to the TOML
    np.testing.assert_allclose(out, ref_conv2d(x, w, b, stride=2), rtol=1e-4, atol=1e-2)
    assert layer.params == 4 * 27 + 4
    ((_, out2),) = feature_maps(img, f"conv({tmp_path / 'w.npy'}, bias=false)")
    np.testing.assert_allclose(out2, ref_conv2d(x, w, None), rtol=1e-4, atol=1e-2)


def test_input_scale_applies_before_the_first_layer(tmp_path):
    (tmp_path / "n.toml").write_text('input_scale = "1/255"\n[[layers]]\ntype = "abs"\n')
    img = np.full((4, 4), 255.0, dtype=np.float32)
    ((_, out),) = feature_maps(img, tmp_path / "n.toml")
    np.testing.assert_allclose(out, 1.0)


# ---------------------------------------------------------------------- errors


def test_stack_that_becomes_empty_is_reported_at_the_breaking_layer():
    spec = (
        "conv(random:4,size=5) pool(max,2) conv(random:4,size=5) pool(max,2) conv(random:4,size=5)"
    )
    with pytest.raises(UsageError, match=r"^layer 5 \(conv\): output would be 0x0"):
        plan(spec, "28x28")
    plan(spec, "32x32")  # 32 -> 28 -> 14 -> 10 -> 5 -> 1: fits exactly
    with pytest.raises(
        UsageError,
        match=r"^layer 3 \(pool\): output would be empty: the window 4 is larger than the 3x3 input",
    ):
        plan("pool(max,2) pool(max,2) pool(max,4)", "12x12")


def test_wrong_weight_shape_names_the_layer(tmp_path):
    np.save(tmp_path / "w.npy", np.zeros((4, 2, 3, 3), np.float32))
    (tmp_path / "n.toml").write_text(
        '[[layers]]\ntype = "relu"\n[[layers]]\ntype = "conv"\nweights = "w.npy"\n'
    )
    with pytest.raises(UsageError) as err:
        plan(tmp_path / "n.toml", "10x10x3")
    msg = str(err.value)
    assert "layer 2 (conv)" in msg and "(4, 2, 3, 3)" in msg and "(M, 3, K, K)" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "text,pattern",
    [
        ('[[layers]]\ntype = "conv"\nfilters = \n', r"malformed TOML"),
        ('[[layers]]\ntype = "conv"\nfilters = "edges"\nsize = 3\n', r"layer 1 \(conv\): size applies only to random"),
        ('[[layers]]\ntype = "relu"\n[[layers]]\ntype = "pool"\nsise = 2\n', r"layer 2 \(pool\): unknown option 'sise'"),
        ('[[layers]]\ntype = "convolution"\n', r"layer 1: unknown type 'convolution'"),
        ('[[layers]]\nfilters = "edges"\n', r"layer 1 has no type"),
        ('name = "x"\n', r"no layers"),
        ('[[layers]]\ntype = "conv"\n', r"layer 1 \(conv\): give exactly one of filters"),
        ('[[layers]]\ntype = "conv"\nfilters = "random:6"\ngroups = 3\n', r"layer 1 \(conv\): groups=3 does not divide"),
        ('[[layers]]\ntype = "conv"\nfilters = "random:6"\nstride = 0\n', r"layer 1 \(conv\): stride must be a whole number >= 1"),
        ('[[layers]]\ntype = "conv"\nfilters = "nosuchkernel"\n', r"layer 1 \(conv\): .*nosuchkernel"),
    ],
)  # fmt: skip
def test_toml_errors_are_one_line_and_name_the_layer(tmp_path, text, pattern):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=pattern) as err:
        plan(path, "16x16x4")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "spec,pattern",
    [
        ("conv(edges) relu pool(max,2", r"layer 3 \(pool\): unbalanced parentheses"),
        ("conv(edges) relu ;", r"layer 3: cannot read ';'"),
        ("conv(edges) frob", r"layer 2: unknown type 'frob'"),
        ("pool(max, 2, 2, 2)", r"layer 1 \(pool\): unexpected argument"),
        ("conv(random:5, groups=2)", r"random:5 filters do not split into groups=2"),
        ("pool(avg, 2, pad=sideways)", r"layer 1 \(pool\): unknown pad mode"),
    ],
)
def test_inline_errors(spec, pattern):
    with pytest.raises(UsageError, match=pattern):
        plan(spec, "16x16x4")


def test_missing_file_and_missing_input():
    with pytest.raises(UsageError, match="does not exist"):
        load_net("no/such/net.toml")
    with pytest.raises(UsageError, match="--input"):
        plan("relu")


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    h=st.integers(8, 40),
    w=st.integers(8, 40),
    c=st.integers(1, 3),
)
def test_planned_shapes_are_the_shapes_that_run(data, h, w, c):
    """For random stacks, every layer's output has exactly the planned shape."""
    choices = [
        "conv(random:{m},size={k},stride={s},pad={pad},seed=1)",
        "pool({mode},{f},{s})",
        "relu",
        "norm",
        "conv(random:{m2},size=1,groups=depthwise)",
    ]
    parts = []
    for _ in range(data.draw(st.integers(1, 4))):
        tpl = data.draw(st.sampled_from(choices))
        parts.append(
            tpl.format(
                m=data.draw(st.integers(1, 4)),
                m2=1,
                k=data.draw(st.sampled_from([1, 2, 3, 5])),
                s=data.draw(st.integers(1, 2)),
                f=data.draw(st.integers(1, 3)),
                pad=data.draw(st.sampled_from(["valid", "1", "reflect", "zero", "wrap"])),
                mode=data.draw(st.sampled_from(["max", "avg", "min", "topleft"])),
            )
        )
    spec = " ".join(parts)
    img = np.random.default_rng(0).random((h, w, c)).astype(np.float32)
    try:
        layers = plan(spec, (c, h, w))
    except UsageError:
        return  # a stack too deep for this image: reported before running
    outs = feature_maps(img, spec)
    assert [out.shape for _, out in outs] == [layer.out_shape for layer in layers]
