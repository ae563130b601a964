"""convtool.scaling: the robust scales --scale auto uses for signed and magnitude kernels."""

from __future__ import annotations

import numpy as np
import pytest

from convtool.io import read_image
from convtool.scaling import AUTO, to_depth

RNG = np.random.default_rng(11)


def _offset_reference(v: np.ndarray, reach: float, top: int) -> np.ndarray:
    mid = top / 2.0
    return np.clip(np.rint(v.astype(np.float64) * (mid / reach) + mid), 0, top)


@pytest.mark.parametrize("depth", [8, 16])
def test_robust_offset_is_offset_at_the_995th_percentile(depth):
    v = RNG.standard_normal((300, 200)).astype(np.float32) * 10
    v[5, 5] = 5000.0  # one extreme pixel
    top = (1 << depth) - 1
    reach = float(np.quantile(np.abs(v), 0.995))
    got = to_depth(v, "robust-offset", depth).astype(np.float64)
    assert np.abs(got - _offset_reference(v, reach, top)).max() <= 1
    # the exact scale lets the one pixel squeeze everything else to mid-grey
    exact = to_depth(v, "offset", depth).astype(np.float64)
    assert np.abs(exact - _offset_reference(v, 5000.0, top)).max() <= 1
    assert got.std() > 5 * exact.std()


def test_robust_normalize_stretches_between_percentiles():
    v = RNG.gamma(2.0, 10.0, size=(256, 256)).astype(np.float32)
    v[:2, :2] = 1e4
    lo, hi = np.quantile(v, [0.005, 0.995])
    expected = np.clip(np.rint((v - lo) * 255 / (hi - lo)), 0, 255)
    assert np.abs(to_depth(v, "robust-normalize").astype(int) - expected).max() <= 1
    exact = np.rint((v - v.min()) * 255 / (v.max() - v.min()))
    assert np.array_equal(to_depth(v, "normalize"), exact.astype(np.uint8))


def test_robust_scales_sample_big_images():
    """Above a million values the percentiles come from a strided sample: close, not exact."""
    v = RNG.standard_normal((1200, 1000)).astype(np.float32)
    reach = float(np.quantile(np.abs(v), 0.995))
    got = to_depth(v, "robust-offset").astype(np.float64)
    assert np.abs(got - _offset_reference(v, reach, 255)).max() <= 2


def test_robust_scales_fall_back_when_percentiles_leave_no_range():
    sparse = np.zeros((100, 100), dtype=np.float32)
    sparse[50, 50], sparse[10, 10] = 8.0, -4.0  # zero almost everywhere
    assert np.array_equal(to_depth(sparse, "robust-offset"), to_depth(sparse, "offset"))
    assert np.array_equal(to_depth(sparse, "robust-normalize"), to_depth(sparse, "normalize"))
    flat = np.full((4, 4), 3.0, dtype=np.float32)
    assert (to_depth(flat, "robust-offset") == 255).all()  # as offset: 3 is the largest |v|
    assert (to_depth(np.zeros((4, 4)), "robust-offset") == 128).all()
    assert (to_depth(flat, "robust-normalize") == 0).all()


def test_robust_scales_ignore_nan_and_inf():
    v = RNG.standard_normal((64, 64)).astype(np.float32)
    v[0, :3] = [np.nan, np.inf, -np.inf]
    for scale in ("robust-offset", "robust-normalize"):
        out = to_depth(v, scale)
        assert out[0, 0] == 0 and out[0, 1] == 255 and out[0, 2] == 0
        assert 35 < out[1:].std()  # the infinities did not set the range


def test_auto_maps_to_the_robust_scales():
    assert AUTO["offset"] == "robust-offset" and AUTO["normalize"] == "robust-normalize"
    assert AUTO["clip"] == "clip" and AUTO["abs"] == "abs"


def test_laplacian_auto_on_a_photo_uses_the_range(tmp_path, samples_dir):
    """On main before the robust scales: std 9.6, 9.5 % of pixels away from mid-grey."""
    from typer.testing import CliRunner

    from convtool.cli import app

    out = tmp_path / "lap.png"
    args = ["convolve", str(samples_dir / "chelsea.png"), "-g", "-k", "laplacian", "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "-q"])
    assert result.exit_code == 0, result.output
    px = read_image(out).data
    assert abs(float(np.median(px)) - 127.5) <= 2  # zero response is mid-grey
    assert px.std() > 20
    assert np.mean(np.abs(px - 127.5) > 16) > 0.2
