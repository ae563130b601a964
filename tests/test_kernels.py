"""The kernel library, the spec grammar, its errors and `convtool kernels`.

References are independent of convtool: scipy.ndimage filters, OpenCV's kernel
builders and hand-written matrices.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from convtool.errors import UsageError
from convtool.kernels import COMBINES, KERNELS, SCALES, KernelSpec, kernel, list_kernels, resolve

REPO = Path(__file__).resolve().parent.parent


def _sample(name: str) -> np.ndarray:
    from PIL import Image

    with Image.open(REPO / "samples" / name) as im:
        return np.asarray(im.convert("L"), dtype=np.float64)


@pytest.fixture(scope="module")
def coins() -> np.ndarray:
    return _sample("coins.png")


# ---------------------------------------------------------------------------
# every built-in: well-formed, and the auto-scale policy fits its weights


@pytest.mark.parametrize("name", list(KERNELS))
def test_every_builtin_is_well_formed(name):
    spec = resolve(name)
    assert isinstance(spec, KernelSpec)
    assert spec.combine in COMBINES and spec.scale in SCALES
    assert len(spec.labels) == len(spec.weights) >= 1
    assert (spec.combine == "single") == (len(spec.weights) == 1)
    for w in spec.weights:
        assert w.dtype == np.float32 and w.ndim == 2 and np.isfinite(w).all()
        assert w.shape == spec.shape
        assert not w.flags.writeable
        assert np.abs(w).sum() > 0
    arr = kernel(name)
    expected_shape = spec.shape if spec.count == 1 else (spec.count, *spec.shape)
    assert arr.shape == expected_shape and arr.dtype == np.float32 and arr.flags.writeable
    d = KERNELS[name]
    if d.main is not None:
        assert d.param(d.main) is not None


@pytest.mark.parametrize("name", list(KERNELS))
def test_auto_scale_policy_matches_the_weights(name):
    spec = resolve(name)
    w = spec.stack().astype(np.float64)
    if spec.scale == "clip":  # smoothing / sum-1 kernels: the result stays on the image's scale
        assert spec.combine == "single"
        assert (w >= 0).all() or abs(w.sum() - 1) < 1e-5
    elif spec.scale == "offset":  # signed single kernels: zero response = mid-grey
        assert spec.combine == "single" and abs(w.sum()) < 1e-5 and (w < 0).any()
    elif spec.scale == "abs":
        assert spec.combine == "single" and abs(w.sum()) < 1e-5
    else:
        assert spec.scale == "normalize"
        assert spec.combine in ("magnitude", "max") or name == "gabor"


def test_list_kernels_describes_the_registry():
    rows = list_kernels()
    assert [r["name"] for r in rows] == list(KERNELS)
    by_name = {r["name"]: r for r in rows}
    assert by_name["gaussian"]["size"] == "2*ceil(3*sigma)+1 (7x7)"
    assert [p["name"] for p in by_name["gaussian"]["parameters"]] == ["sigma", "size"]
    assert by_name["gaussian"]["parameters"][1]["default"] is None
    assert by_name["sobel"] | {} == by_name["sobel"]
    assert (by_name["sobel"]["combine"], by_name["sobel"]["kernels"]) == ("magnitude", 2)
    assert (by_name["kirsch"]["combine"], by_name["kirsch"]["kernels"]) == ("max", 8)
    assert (by_name["line"]["combine"], by_name["line"]["kernels"]) == ("max", 4)
    assert by_name["sobel-x"]["scale"] == "offset" and by_name["gaussian"]["scale"] == "clip"
    assert by_name["kirsch-ne"]["group"] == "kirsch"
    json.dumps(rows)  # JSON-friendly


# ---------------------------------------------------------------------------
# known values


def test_sobel_values_and_sign_convention(coins):
    sx = kernel("sobel-x")
    np.testing.assert_array_equal(sx, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.testing.assert_array_equal(kernel("sobel-y"), sx.T)
    np.testing.assert_array_equal(kernel("sobel"), np.stack([sx, sx.T]))
    # + for intensity rising to the right (x) / downwards (y) under correlation
    ramp = np.tile(np.arange(8.0), (8, 1))
    assert (ndi.correlate(ramp, sx, mode="nearest")[:, 1:-1] > 0).all()
    assert (ndi.convolve(ramp, sx, mode="nearest")[:, 1:-1] < 0).all()
    assert (ndi.correlate(ramp.T, kernel("sobel-y"), mode="nearest")[1:-1] > 0).all()
    # scipy.ndimage.sobel is the same correlation
    np.testing.assert_allclose(
        ndi.correlate(coins, sx.astype(np.float64)), ndi.sobel(coins, axis=1), atol=1e-9
    )
    np.testing.assert_allclose(
        ndi.correlate(coins, kernel("sobel-y").astype(np.float64)),
        ndi.sobel(coins, axis=0),
        atol=1e-9,
    )


def test_prewitt_and_scharr_against_references(coins):
    px = kernel("prewitt-x").astype(np.float64)
    np.testing.assert_array_equal(px, [[-1, 0, 1]] * 3)
    np.testing.assert_allclose(ndi.correlate(coins, px), ndi.prewitt(coins, axis=1), atol=1e-9)
    np.testing.assert_allclose(
        ndi.correlate(coins, kernel("prewitt-y").astype(np.float64)),
        ndi.prewitt(coins, axis=0),
        atol=1e-9,
    )
    img = coins.astype(np.float32)
    for name, dx, dy in (("scharr-x", 1, 0), ("scharr-y", 0, 1)):
        ours = ndi.correlate(img, kernel(name), mode="mirror")
        ref = cv2.Scharr(img, cv2.CV_32F, dx, dy, borderType=cv2.BORDER_REFLECT_101)
        np.testing.assert_allclose(ours, ref, atol=1e-2)
    np.testing.assert_array_equal(kernel("scharr-x")[1], [-10, 0, 10])


def test_roberts():
    np.testing.assert_array_equal(kernel("roberts-x"), [[-1, 0], [0, 1]])
    np.testing.assert_array_equal(kernel("roberts-y"), [[0, -1], [1, 0]])
    assert kernel("roberts").shape == (2, 2, 2) and resolve("roberts").combine == "magnitude"
    # + for intensity rising towards the lower right
    rows, cols = np.mgrid[0:6, 0:6]
    diag = (rows + cols).astype(float)
    assert (ndi.correlate(diag, kernel("roberts-x"), mode="nearest")[1:, 1:] > 0).all()
    anti = (rows - cols).astype(float)  # rises towards the lower left
    assert (ndi.correlate(anti, kernel("roberts-y"), mode="nearest")[1:, 1:] > 0).all()


def test_laplacian_variants(coins):
    four = kernel("laplacian")
    np.testing.assert_array_equal(four, [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    np.testing.assert_allclose(
        ndi.correlate(coins, four.astype(np.float64)), ndi.laplace(coins), atol=1e-9
    )
    eight = [[1, 1, 1], [1, -8, 1], [1, 1, 1]]
    for spec in (
        "laplacian8",
        "laplacian:8",
        "laplacian:neighbours=8",
        "laplacian:n=8",
        "laplace:8",
    ):
        np.testing.assert_array_equal(kernel(spec), eight)
    np.testing.assert_array_equal(kernel("laplacian4"), four)


def test_identity_box_sharpen_emboss(coins):
    np.testing.assert_array_equal(kernel("identity"), [[1]])
    i5 = kernel("identity:5")
    assert i5.shape == (5, 5) and i5[2, 2] == 1 and i5.sum() == 1
    np.testing.assert_array_equal(ndi.convolve(coins, i5.astype(np.float64)), coins)
    for size in (1, 2, 3, 7):
        b = kernel(f"box:{size}")
        assert b.shape == (size, size) and np.ptp(b) == 0
        assert b.sum() == pytest.approx(1, abs=1e-6)
    np.testing.assert_allclose(
        ndi.correlate(coins, kernel("box:3").astype(np.float64)),
        ndi.uniform_filter(coins, 3),
        atol=1e-4,
    )
    np.testing.assert_array_equal(kernel("sharpen"), [[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    np.testing.assert_array_equal(kernel("sharpen:0"), kernel("identity:3"))
    np.testing.assert_allclose(kernel("sharpen:0.5")[1], [-0.5, 3, -0.5])
    np.testing.assert_array_equal(kernel("emboss"), [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])


def test_gaussian_matches_opencv_and_is_separable():
    g = kernel("gaussian")
    assert g.shape == (7, 7)  # 2*ceil(3*1)+1
    assert kernel("gaussian:2").shape == (13, 13)
    assert kernel("gaussian:0.5").shape == (5, 5)
    for sigma, size in ((1.0, 7), (2.0, 13), (0.8, 5), (1.5, 9), (3.0, 7)):
        k = kernel(f"gaussian:sigma={sigma},size={size}")
        assert k.sum() == pytest.approx(1.0, abs=1e-6)
        ref = cv2.getGaussianKernel(size, sigma, ktype=cv2.CV_64F)
        np.testing.assert_allclose(k, ref @ ref.T, atol=1e-7)
        # a 1-D Gaussian, written out here, outer itself
        x = np.arange(size) - size // 2
        g1 = np.exp(-(x**2) / (2 * sigma**2))
        g1 /= g1.sum()
        np.testing.assert_allclose(k, np.outer(g1, g1), atol=1e-7)
        assert np.linalg.matrix_rank(k.astype(np.float64), tol=1e-6) == 1
    np.testing.assert_array_equal(kernel("gaussian:2"), kernel("gaussian:sigma=2"))
    np.testing.assert_array_equal(kernel("gaussian:2"), kernel("gauss:sigma=2,size=13"))


def test_unsharp_is_identity_plus_detail():
    k = kernel("unsharp:sigma=1.5,amount=0.7").astype(np.float64)
    size = 2 * math.ceil(4.5) + 1
    g = kernel(f"gaussian:1.5,size={size}").astype(np.float64)
    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 1
    np.testing.assert_allclose(k, 1.7 * delta - 0.7 * g, atol=1e-6)
    assert k.sum() == pytest.approx(1.0, abs=1e-5)


@settings(max_examples=40, deadline=None)
@given(length=st.integers(1, 25), angle=st.floats(-360, 360, allow_nan=False))
def test_motion_is_a_normalised_centred_line(length, angle):
    k = kernel(f"motion:{length},angle={angle}").astype(np.float64)
    assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1 and k.shape[0] in (length, length + 1)
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    assert (k >= 0).all()
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-6)  # a line through the centre
    # the weighted centroid is the centre pixel
    rows, cols = np.indices(k.shape)
    c = k.shape[0] // 2
    assert (k * rows).sum() == pytest.approx(c, abs=1e-4)
    assert (k * cols).sum() == pytest.approx(c, abs=1e-4)


def test_motion_known_directions():
    k = kernel("motion:9")
    expected = np.zeros((9, 9), np.float32)
    expected[4] = 1 / 9
    np.testing.assert_allclose(k, expected, atol=1e-7)
    np.testing.assert_allclose(kernel("motion:9,angle=90"), k.T, atol=1e-7)
    np.testing.assert_allclose(kernel("motion:9,angle=180"), k, atol=1e-7)
    k45 = kernel("motion:7,angle=45")
    np.testing.assert_allclose(k45, kernel("motion:7,angle=135")[:, ::-1], atol=1e-7)
    # 45 degrees counter-clockwise: from lower left to upper right, on the anti-diagonal
    # (a 7-pixel line spans +-3.5 pixels, so it stops short of the corners)
    assert k45[1, 5] > 0 and k45[5, 1] > 0 and k45[1, 1] == 0 and k45[5, 5] == 0
    assert k45[0, 6] == 0
    assert np.fliplr(k45).diagonal().sum() > 0.6  # most of the weight on the anti-diagonal
    assert kernel("motion:8").shape == (9, 9)


def test_log_is_zero_sum_and_matches_scipy_shape():
    k = kernel("log").astype(np.float64)
    assert k.shape == (11, 11)
    assert abs(k.sum()) < 1e-6
    np.testing.assert_allclose(k, k.T, atol=1e-7)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)
    assert k[5, 5] == k.min() < 0
    for sigma in (1.0, 2.0):
        k = kernel(f"log:{sigma}").astype(np.float64)
        n = k.shape[0]
        delta = np.zeros((n, n))
        delta[n // 2, n // 2] = 1
        ref = ndi.gaussian_laplace(delta, sigma, mode="constant", truncate=3.0) * sigma**2
        ref -= ref.mean()
        assert np.corrcoef(k.ravel(), ref.ravel())[0, 1] > 0.99
        # scale-normalised sigma^2 * lap(G): the centre is -1/(pi sigma^2) (plus a tiny
        # zero-sum shift)
        assert k[n // 2, n // 2] == pytest.approx(-1 / (math.pi * sigma**2), rel=0.02)


def test_dog_is_a_difference_of_normalised_gaussians():
    k = kernel("dog").astype(np.float64)
    assert k.shape == (11, 11)  # 2*ceil(3*1.6)+1
    assert abs(k.sum()) < 1e-6 and k[5, 5] == k.max() > 0
    k2 = kernel("dog:sigma1=1,sigma2=2,size=15").astype(np.float64)
    ref = kernel("gaussian:1,size=15").astype(np.float64) - kernel("gaussian:2,size=15")
    np.testing.assert_allclose(k2, ref, atol=1e-7)
    np.testing.assert_allclose(kernel("dog:1.5"), kernel("dog:sigma1=1.5,sigma2=1.6"))


@pytest.mark.parametrize(
    "theta, psi", [(0, 0), (30, 0), (45, 90), (100, 45), (-60, 180), (170, 30)]
)
def test_gabor_matches_opencv(theta, psi):
    ours = kernel(f"gabor:theta={theta},sigma=2.5,lambda=7,gamma=0.6,psi={psi},size=17,dc=true")
    # OpenCV lays its x axis to the left, so its angle is 180 - ours
    ref = cv2.getGaborKernel(
        (17, 17), 2.5, math.pi - math.radians(theta), 7.0, 0.6, math.radians(psi), ktype=cv2.CV_64F
    )
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_gabor_symmetries_and_direction():
    even = kernel("gabor:theta=30").astype(np.float64)
    assert even.shape == (25, 25)  # 2*ceil(3*2/0.5)+1
    np.testing.assert_allclose(even, even[::-1, ::-1], atol=1e-7)  # psi=0: even
    odd = kernel("gabor:theta=30,psi=90").astype(np.float64)
    np.testing.assert_allclose(odd, -odd[::-1, ::-1], atol=1e-6)  # psi=90: odd
    np.testing.assert_allclose(kernel("gabor:90"), kernel("gabor:0").T, atol=1e-7)
    # theta=0: the wave runs along x, so each column is one phase (vertical stripes)
    k0 = kernel("gabor:theta=0,gamma=1,size=13,dc=true")
    c = 6
    assert k0[c, c] == pytest.approx(1.0)
    assert k0[c, c + 3] < 0 and k0[c + 3, c] > 0  # half a wavelength right is negative


@pytest.mark.parametrize(
    "spec",
    ["gabor", "gabor:45", "gabor:theta=30,lambda=10,sigma=3", "gabor:psi=45", "gabor:gamma=1.5"],
)
def test_gabor_is_zero_mean_by_default(spec):
    """The default Gabor has no DC term, so a flat image gives 0 (it is not a blur)."""
    default = kernel(spec).astype(np.float64)
    kept = kernel(spec + ("," if ":" in spec else ":") + "dc=true").astype(np.float64)
    assert abs(default.sum()) < 1e-5 * np.abs(default).sum()
    assert abs(kept.sum()) > 0.05 * np.abs(kept).sum()  # what the default removes


def test_gabor_dc_correction_follows_the_envelope():
    """Removing the DC term subtracts a multiple of the Gaussian envelope (no square pedestal)."""
    diff = kernel("gabor:dc=true").astype(np.float64) - kernel("gabor").astype(np.float64)
    n = diff.shape[0] // 2
    y, x = np.mgrid[-n : n + 1, -n : n + 1].astype(np.float64)
    envelope = np.exp(-(x**2 + (0.5 * y) ** 2) / (2 * 2.0**2))  # theta=0, sigma=2, gamma=0.5
    np.testing.assert_allclose(diff, envelope * (diff.sum() / envelope.sum()), atol=1e-6)


def test_gabor_dc_parameter():
    assert dict(resolve("gabor:dc=yes").params)["dc"] is True
    assert dict(resolve("gabor").params)["dc"] is False
    with pytest.raises(UsageError, match="dc must be true or false"):
        resolve("gabor:dc=maybe")


def test_kirsch_rotations():
    bank = kernel("kirsch")
    np.testing.assert_array_equal(bank[0], [[5, 5, 5], [-3, 0, -3], [-3, -3, -3]])
    np.testing.assert_array_equal(kernel("kirsch-ne"), [[-3, 5, 5], [-3, 0, 5], [-3, -3, -3]])
    np.testing.assert_array_equal(kernel("kirsch-e"), [[-3, -3, 5], [-3, 0, 5], [-3, -3, 5]])
    labels = resolve("kirsch").labels
    assert labels == tuple(f"kirsch-{d}" for d in ("n", "ne", "e", "se", "s", "sw", "w", "nw"))
    for i in range(8):
        # two ring steps = a quarter turn clockwise
        np.testing.assert_array_equal(bank[(i + 2) % 8], np.rot90(bank[i], -1))
        np.testing.assert_array_equal(bank[i], kernel(labels[i]))
        assert bank[i].sum() == 0
    assert (bank.sum(axis=0) == 0).all()
    assert resolve("kirsch").combine == "max"
    # kirsch-n fires on a region that is brighter above
    img = np.zeros((6, 6))
    img[:3] = 100
    responses = [ndi.correlate(img, k.astype(np.float64))[2, 2] for k in bank]
    assert int(np.argmax(responses)) == 0 and responses[0] > 0


def test_compass_is_rotated_sobel():
    bank = kernel("compass")
    np.testing.assert_array_equal(kernel("compass-n"), -kernel("sobel-y"))
    np.testing.assert_array_equal(kernel("compass-e"), kernel("sobel-x"))
    np.testing.assert_array_equal(kernel("compass-ne"), [[0, 1, 2], [-1, 0, 1], [-2, -1, 0]])
    for i in range(8):
        np.testing.assert_array_equal(bank[(i + 2) % 8], np.rot90(bank[i], -1))
        np.testing.assert_array_equal(bank[(i + 4) % 8], -bank[i])


def test_line_detectors():
    h = kernel("line-h")
    np.testing.assert_array_equal(h, [[-1, -1, -1], [2, 2, 2], [-1, -1, -1]])
    np.testing.assert_array_equal(kernel("line-v"), h.T)
    np.testing.assert_array_equal(kernel("line-d1"), [[-1, -1, 2], [-1, 2, -1], [2, -1, -1]])
    np.testing.assert_array_equal(kernel("line-d2"), kernel("line-d1")[:, ::-1])
    bank = kernel("line")
    assert bank.shape == (4, 3, 3) and resolve("line").combine == "max"
    assert resolve("line").labels == ("line-h", "line-v", "line-d1", "line-d2")
    # each detector answers its own one-pixel bright line best
    lines = {
        0: np.pad(np.ones((1, 7)), ((3, 3), (0, 0))),
        1: np.pad(np.ones((7, 1)), ((0, 0), (3, 3))),
        2: np.fliplr(np.eye(7)),  # rising: lower left to upper right
        3: np.eye(7),
    }
    for index, img in lines.items():
        responses = [ndi.correlate(img, k.astype(np.float64))[3, 3] for k in bank]
        assert int(np.argmax(responses)) == index and responses[index] == 6


# ---------------------------------------------------------------------------
# the spec grammar


def test_names_ignore_case_and_separators_and_aliases():
    ref = kernel("sobel-x")
    for spec in ("SOBEL-X", "sobel_x", "sobelx", " Sobel-X "):
        np.testing.assert_array_equal(kernel(spec), ref)
    np.testing.assert_array_equal(kernel("mean:5"), kernel("box:5"))
    assert resolve("box:5").name == "box:size=5"
    assert resolve("gaussian:2,size=9").params == (("sigma", 2.0), ("size", 9))
    assert resolve("motion:9,angle=30").params == (("length", 9), ("angle", 30.0))
    assert resolve("gabor:wavelength=9").params[2] == ("lambda", 9.0)
    assert resolve("gaussian:sigma = 2 , size = 9").shape == (9, 9)  # spaces around '='
    assert resolve("box:5.0").shape == (5, 5)  # a whole float is a whole number


def test_matrix_forms():
    ref = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32)
    for text in (
        "1 0 -1; 2 0 -2; 1 0 -1",
        "1,0,-1;2,0,-2;1,0,-1;",
        "1 0 -1\n2 0 -2\n1 0 -1\n",
        "  1, 0, -1\n\n 2 , 0 , -2 \n1 0 -1 ",
        "[[1, 0, -1], [2, 0, -2], [1, 0, -1]]",
        "[1 0 -1; 2 0 -2; 1 0 -1]",
    ):
        np.testing.assert_array_equal(kernel(text), ref, err_msg=repr(text))
    np.testing.assert_array_equal(kernel("5"), [[5]])
    np.testing.assert_array_equal(kernel("1 \u22121"), [[1, -1]])  # typographic minus
    np.testing.assert_array_equal(kernel('"1","-2"\n"3","4"'), [[1, -2], [3, 4]])  # quoted CSV
    np.testing.assert_array_equal(kernel("[1 2;\n 3 4]"), [[1, 2], [3, 4]])  # MATLAB, 2 lines
    np.testing.assert_array_equal(kernel("-.5 1e-3 +2"), np.float32([[-0.5, 0.001, 2]]))
    np.testing.assert_array_equal(kernel(ref.tolist()), ref)
    np.testing.assert_array_equal(kernel(tuple(map(tuple, ref.tolist()))), ref)
    np.testing.assert_array_equal(kernel(ref.astype(np.int16)), ref)
    np.testing.assert_array_equal(kernel([[True, False]]), [[1, 0]])
    spec = resolve(ref)
    assert spec.name == "matrix" and spec.combine == "single" and spec.scale == "offset"
    assert resolve("1 2; 3 4").scale == "clip"
    assert resolve(spec) is spec
    out = kernel(ref)
    out[0, 0] = 99  # a fresh copy: the spec and the caller's array are untouched
    assert ref[0, 0] == 1 and kernel("sobel-x")[0, 0] == -1


def test_kernel_files(tmp_path):
    (tmp_path / "k.txt").write_text("# an edge kernel\n1 0 -1  # first row\n2 0 -2\n1 0 -1\n")
    (tmp_path / "k.csv").write_text("1,0,-1\n2,0,-2\n1,0,-1\n")
    np.save(tmp_path / "k.npy", kernel("sobel-x").T * -1)
    ref = -kernel("sobel-x")
    np.testing.assert_array_equal(kernel(f"@{tmp_path / 'k.txt'}"), ref)
    np.testing.assert_array_equal(kernel(f"@{tmp_path / 'k.csv'}"), ref)
    np.testing.assert_array_equal(kernel(f"@{tmp_path / 'k.npy'}"), ref.T)
    np.testing.assert_array_equal(kernel(tmp_path / "k.csv"), ref)  # a PathLike is a file
    home = os.path.expanduser("~")
    if tmp_path.is_relative_to(home):  # '~' is expanded
        rel = tmp_path.relative_to(home) / "k.csv"
        np.testing.assert_array_equal(kernel(f"@~/{rel}"), ref)
    spec = resolve(f"@{tmp_path / 'k.txt'}")
    assert spec.name == f"@{tmp_path / 'k.txt'}" and spec.labels == ("k.txt",)


_FLOATS = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def _matrices(draw):
    rows = draw(st.integers(1, 6))
    cols = draw(st.integers(1, 6))
    values = draw(st.lists(_FLOATS, min_size=rows * cols, max_size=rows * cols))
    return np.array(values, dtype=np.float32).reshape(rows, cols)


@settings(max_examples=60, deadline=None)
@given(
    m=_matrices(),
    row_sep=st.sampled_from([";", "; ", "\n", " ;\n"]),
    num_sep=st.sampled_from([" ", ",", ", ", "\t", "  "]),
)
def test_matrix_text_and_files_round_trip_exactly(m, row_sep, num_sep):
    text = row_sep.join(num_sep.join(repr(float(v)) for v in row) for row in m)
    np.testing.assert_array_equal(kernel(text), m)
    with tempfile.TemporaryDirectory() as tmp:
        txt = os.path.join(tmp, "k.txt")
        with open(txt, "w") as fh:
            fh.write(text.replace(";", "\n"))
        csv = os.path.join(tmp, "k.csv")
        with open(csv, "w") as fh:
            fh.write("\n".join(",".join(repr(float(v)) for v in row) for row in m) + "\n")
        npy = os.path.join(tmp, "k.npy")
        np.save(npy, m)
        for path in (txt, csv, npy):
            got = kernel("@" + path)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, m)


# ---------------------------------------------------------------------------
# errors: every one a one-line UsageError that says what to do

ERRORS = [
    ("gausian", "did you mean gaussian"),
    ("sobl", "known kernels: identity, box, gaussian"),
    ("kirsh-n", "did you mean kirsch-n"),
    ("", "empty kernel spec"),
    ("   ", "empty kernel spec"),
    (" ; \n ;", "is empty"),
    ("1 2; 3", "ragged: row 2 has 1 number but row 1 has 2"),
    ("1 2 3\n4 5", "ragged"),
    ("1 nan; 2 3", "non-finite weight (nan) at row 1, column 2"),
    ("inf", "non-finite"),
    ("1 -inf", "non-finite"),
    ("1e999 1", "non-finite"),
    ("1 2 x", "'x' is not a number"),
    ("1;0;-1\n2;0;-2", "uses both ';' and line breaks"),  # a ';'-separated CSV
    ("sobel x", "bad kernel spec"),
    ("gaussian:0", "sigma must be > 0"),
    ("gaussian:sigma=-1", "sigma must be > 0"),
    ("gaussian:sigma=abc", "sigma must be a number"),
    ("gaussian:sigma=nan", "finite"),
    ("gaussian:size=4", "size must be odd"),
    ("gaussian:sgma=2", "did you mean 'sigma'"),
    ("gaussian:foo=1", "has no parameter 'foo'"),
    ("gaussian:", "empty parameter"),
    ("gaussian:1,,size=3", "empty parameter"),
    ("gaussian:1,2", "write key=value"),
    ("gaussian:1,sigma=2", "given twice"),
    ("box:0", "size must be >= 1"),
    ("box:2.5", "whole number"),
    ("box:size=three", "must be a whole number"),
    ("laplacian:6", "neighbours must be 4 or 8"),
    ("motion:0", "length must be >= 1"),
    ("gabor:gamma=0", "gamma must be > 0"),
    ("gabor:lambda=-2", "lambda must be > 0"),
    ("dog:1,sigma2=1", "sigma1 and sigma2 must differ"),
    ("log:size=10", "odd"),
    ("sobel:3", "takes no parameters"),
    ("gaussian:1e6", "would need a 6000001x6000001 kernel"),
    ("dog:sigma2=500", "max(sigma1, sigma2) 500 would need"),
    ("gabor:sigma=100,gamma=0.1", "sigma/min(gamma,1) 1000 would need"),
    ("box:100000", "size must be <= 1025"),
    ("motion:1e9", "length must be <= 1025"),
    ("gaussian:1,size=2001", "size must be <= 1025"),
    ("@", "empty kernel file name"),
    ("@/no/such/kernel.txt", "not found"),
]


@pytest.mark.parametrize("spec, fragment", ERRORS)
def test_bad_specs_are_one_line_usage_errors(spec, fragment):
    with pytest.raises(UsageError) as info:
        resolve(spec)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "value, fragment",
    [
        (np.zeros((2, 3, 3)), "must be 2-D, got 3-D"),
        (np.zeros(3), "must be 2-D, got 1-D"),
        (np.zeros((0, 3)), "is empty"),
        ([], "is empty"),
        ([[1, 2], [3]], "ragged"),
        (np.array([["a", "b"]]), "not numeric"),
        (np.array([[1 + 2j]]), "complex"),
        (np.array([[1.0, np.nan]]), "non-finite"),
        (np.array([[1e300]]), "too large for float32"),
        (object(), "not numeric"),
    ],
)
def test_bad_arrays_are_usage_errors(value, fragment):
    with pytest.raises(UsageError, match=fragment):
        resolve(value)


def test_bad_files_are_usage_errors(tmp_path):
    (tmp_path / "empty.txt").write_text("# nothing here\n\n")
    (tmp_path / "bad.csv").write_text("1,2\n3,four\n")
    (tmp_path / "ragged.txt").write_text("1 2 3\n4 5\n")
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    (tmp_path / "broken.npy").write_bytes(b"not an npy file")
    np.save(tmp_path / "cube.npy", np.ones((2, 3, 3)))
    np.save(tmp_path / "obj.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    cases = {
        "empty.txt": "is empty",
        "bad.csv": "'four' is not a number (row 2)",
        "ragged.txt": "ragged",
        "binary.txt": "is not text",
        "broken.npy": "not a readable .npy",
        "cube.npy": "must be 2-D",
        "obj.npy": "not a readable .npy",
        ".": "is a directory",
    }
    for name, fragment in cases.items():
        with pytest.raises(UsageError) as info:
            resolve(f"@{tmp_path / name}")
        assert fragment in str(info.value), name
        assert "\n" not in str(info.value)
        if name != ".":
            assert name in str(info.value)  # the message names the file


# ---------------------------------------------------------------------------
# the CLI


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def _app():
    from convtool.cli import app

    return app


def test_cli_table_lists_every_kernel_with_its_auto_scale(runner):
    result = runner.invoke(_app(), ["kernels"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for name in ("identity", "gaussian", "sobel-x", "laplacian8", "gabor", "kirsch-DIR", "line"):
        assert name in out
    assert "*sigma=1, size=auto" in out and "normalize" in out and "offset" in out
    assert "ne e se s sw w nw" in out


def test_cli_json_lists_the_registry(runner):
    result = runner.invoke(_app(), ["kernels", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == list(KERNELS)
    assert {r["name"]: r["scale"] for r in rows}["laplacian"] == "offset"


def test_cli_show_prints_the_matrix_and_combine_rule(runner):
    result = runner.invoke(_app(), ["kernels", "show", "sobel"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "# 2 kernels, combine magnitude: sqrt of the sum of the squared responses" in lines
    assert "# --scale auto = robust-normalize" in lines
    i = lines.index("# sobel-x (sum 0)")
    assert lines[i + 1 : i + 4] == ["-1  0  1", "-2  0  2", "-1  0  1"]
    result = runner.invoke(_app(), ["kernels", "show", "gaussian:1"])
    assert "0.1592" in result.stdout and "# gaussian:sigma=1: 7x7, sigma=1, size=7" in result.stdout
    result = runner.invoke(_app(), ["kernels", "show", "log", "-p", "2"])
    assert "-0.16" in result.stdout and "-0.00" not in result.stdout


def test_cli_show_exact_output_reads_back_as_a_file(runner, tmp_path):
    for spec in ("gaussian:1.3", "gabor:theta=20", "1e-9 3; -2.5e8 0.1"):
        result = runner.invoke(_app(), ["kernels", "show", spec, "--exact"])
        assert result.exit_code == 0
        path = tmp_path / "k.txt"
        path.write_text(result.stdout)
        np.testing.assert_array_equal(kernel(f"@{path}"), kernel(spec))


def test_cli_show_json(runner):
    result = runner.invoke(_app(), ["kernels", "show", "kirsch", "--json"])
    data = json.loads(result.stdout)
    assert data["combine"] == "max" and data["shape"] == [3, 3] and len(data["weights"]) == 8
    np.testing.assert_array_equal(np.array(data["weights"], np.float32), kernel("kirsch"))


def test_cli_errors_are_one_line_exit_2(runner, tmp_path):
    result = runner.invoke(_app(), ["kernels", "show", "gausian"])
    assert result.exit_code == 2
    assert result.stderr.startswith("convtool: error: unknown kernel 'gausian': did you mean")
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    out = tmp_path / "k.xyz"
    result = runner.invoke(_app(), ["kernels", "show", "sobel", "--png", str(out)])
    assert result.exit_code == 2 and not out.exists() and list(tmp_path.iterdir()) == []
    result = runner.invoke(_app(), ["kernels", "show", "sobel", "--png", "x.png", "--cell", "0"])
    assert result.exit_code == 2 and "--cell" in result.stderr


def test_cli_help_explains_the_grammar(runner):
    for args in (["kernels", "--help"], ["kernels", "show", "--help"]):
        result = runner.invoke(_app(), args)
        assert result.exit_code == 0
        for example in ("gaussian:2", "1 0 -1; 2 0 -2; 1 0 -1", "@edge.txt", "NAME:key=value"):
            assert example in result.stdout, (args, example)


def test_cli_png_draws_a_diverging_grid(runner, tmp_path):
    from PIL import Image

    from convtool.commands.kernels import _NEG, _POS

    out = tmp_path / "sobel.png"
    result = runner.invoke(
        _app(), ["kernels", "show", "sobel-x", "--png", str(out), "--cell", "20"]
    )
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        px = np.asarray(im)
    x0, y0, cell = 12, 36, 20  # gap, gap + label height, --cell

    def centre(r, c):
        return tuple(px[y0 + r * cell + cell // 2, x0 + c * cell + cell // 2])

    assert centre(1, 2) == _POS  # +2, the largest weight: full red
    assert centre(1, 0) == _NEG  # -2: full blue
    assert centre(1, 1) == (255, 255, 255)  # zero: white
    half_red = centre(0, 2)  # +1: halfway from white to red
    assert half_red[0] > half_red[1] and 255 > half_red[1] > _POS[1]
    assert [f.name for f in tmp_path.iterdir()] == ["sobel.png"]  # no temporary left behind

    out = tmp_path / "kirsch.png"
    assert runner.invoke(_app(), ["kernels", "show", "kirsch", "--png", str(out)]).exit_code == 0
    with Image.open(out) as im:
        w, h = im.size
    assert w > h > 0  # 8 panels in two rows of four


def test_kernels_command_never_imports_numba(tmp_path):
    code = (
        "import sys\n"
        "import convtool.kernels\n"
        "assert 'numba' not in sys.modules and 'PIL' not in sys.modules, 'kernels.py'\n"
        "from typer.testing import CliRunner\n"
        "import convtool.cli\n"
        "runner = CliRunner()\n"
        f"for args in (['kernels'], ['kernels', '--json'], ['kernels', 'show', 'gabor'],\n"
        f"             ['kernels', 'show', 'kirsch', '--png', {str(tmp_path / 'k.png')!r}]):\n"
        "    result = runner.invoke(convtool.cli.app, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert (tmp_path / "k.png").exists()
