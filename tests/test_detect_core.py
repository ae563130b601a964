"""The Numba pieces of detection against plain-Python references: peaks and suppression."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convtool.core.match import find_peaks, greedy_suppress
from convtool.detection import detect


def iou(a, b) -> float:
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union


def nms_reference(boxes, thr, max_keep=0):
    """Textbook greedy NMS over boxes sorted best first: O(n^2)."""
    kept = []
    for i, b in enumerate(boxes):
        if all(iou(b, boxes[j]) <= thr for j in kept):
            kept.append(i)
            if max_keep and len(kept) == max_keep:
                break
    return kept


def distance_reference(boxes, d):
    kept = []
    for i, b in enumerate(boxes):
        c = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
        ok = True
        for j in kept:
            k = boxes[j]
            ck = ((k[0] + k[2]) / 2, (k[1] + k[3]) / 2)
            if abs(c[0] - ck[0]) < d and abs(c[1] - ck[1]) < d:
                ok = False
        if ok:
            kept.append(i)
    return kept


def suppress(boxes, mode, param, max_keep=0):
    a = np.asarray(boxes, np.float64).reshape(-1, 4)
    if mode == 0:
        cell = float(max((a[:, 2] - a[:, 0]).max(initial=1), (a[:, 3] - a[:, 1]).max(initial=1)))
    else:
        cell = float(param)
    keep = greedy_suppress(a[:, 0], a[:, 1], a[:, 2], a[:, 3], mode, float(param), max_keep, cell)
    return keep.tolist()


def test_nms_on_constructed_overlaps():
    boxes = [
        (0, 0, 10, 10),  # best
        (1, 1, 11, 11),  # IoU 81/119 = 0.68 with the best: dropped
        (30, 30, 40, 40),  # far away: kept
        (6, 0, 16, 10),  # IoU 40/160 = 0.25 with the best
        (31, 30, 41, 40),  # IoU 0.82 with the third: dropped
    ]
    assert suppress(boxes, 0, 0.3) == [0, 2, 3]
    assert suppress(boxes, 0, 0.2) == [0, 2]  # 0.25 > 0.2 now drops the fourth
    assert suppress(boxes, 0, 0.9) == [0, 1, 2, 3, 4]
    assert suppress(boxes, 0, 0.3, max_keep=2) == [0, 2]
    assert suppress([], 0, 0.3) == []


def test_nms_across_box_sizes():
    boxes = [(0, 0, 20, 20), (2, 2, 12, 12), (50, 0, 60, 10)]  # small one inside the big one
    # IoU of the inner box = 100/400 = 0.25
    assert suppress(boxes, 0, 0.3) == [0, 1, 2]
    assert suppress(boxes, 0, 0.2) == [0, 2]


def test_min_distance_on_constructed_points():
    boxes = [(0, 0, 10, 10), (4, 0, 14, 10), (9, 9, 19, 19), (5, 20, 15, 30)]
    # centres (5,5), (9,5), (14,14), (10,25)
    assert suppress(boxes, 1, 5) == [0, 2, 3]
    assert suppress(boxes, 1, 10) == [0, 3]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 60),
    thr=st.floats(0.0, 0.9),
    sizes=st.sampled_from([(8, 8), (5, 12), (20, 3)]),
    mixed=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_nms_matches_reference(n, thr, sizes, mixed, seed):
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(n):
        x, y = rng.integers(0, 40, 2)
        s = rng.choice([0.5, 1.0, 1.7]) if mixed else 1.0
        w, h = round(sizes[0] * s), round(sizes[1] * s)
        boxes.append((float(x), float(y), float(x + w), float(y + h)))
    assert suppress(boxes, 0, thr) == nms_reference(boxes, thr)
    assert suppress(boxes, 0, thr, max_keep=3) == nms_reference(boxes, thr, 3)
    d = float(rng.integers(1, 15))
    assert suppress(boxes, 1, d) == distance_reference(boxes, d)


def peaks_reference(score, thr, sign):
    h, w = score.shape
    out = []
    for y in range(h):
        for x in range(w):
            v = sign * score[y, x]
            if v < sign * thr:
                continue
            ok = True
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = y + dy, x + dx
                    if (dy, dx) == (0, 0) or not (0 <= yy < h and 0 <= xx < w):
                        continue
                    nv = sign * score[yy, xx]
                    earlier = dy < 0 or (dy == 0 and dx < 0)
                    if nv > v or (earlier and nv == v):
                        ok = False
            if ok:
                out.append((y, x))
    return out


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    levels=st.integers(2, 6),
    sign=st.sampled_from([1.0, -1.0]),
    seed=st.integers(0, 2**16),
)
def test_find_peaks_matches_reference(h, w, levels, sign, seed):
    rng = np.random.default_rng(seed)
    score = (rng.integers(0, levels, (h, w)) / levels).astype(np.float32)  # many ties
    thr = 0.3
    ys, xs = find_peaks(score, thr, sign)
    assert list(zip(ys.tolist(), xs.tolist(), strict=True)) == peaks_reference(score, thr, sign)


def test_plateau_gives_one_peak():
    score = np.zeros((30, 40), np.float32)
    ys, xs = find_peaks(score, -1.0, 1.0)
    assert (ys.tolist(), xs.tolist()) == ([0], [0])
    score[10:15, 20:26] = 0.9
    ys, xs = find_peaks(score, 0.5, 1.0)
    assert (ys.tolist(), xs.tolist()) == ([10], [20])


def test_detect_on_random_noise_with_low_threshold_is_fast_and_non_overlapping():
    rng = np.random.default_rng(5)
    img = rng.random((300, 300)).astype(np.float32)
    dets = detect(img, img[:7, :7], threshold=-1.0)
    assert len(dets) > 500
    boxes = [(d.x, d.y, d.x + d.width, d.y + d.height) for d in dets]
    grid = {}
    for i, b in enumerate(boxes):  # no kept pair overlaps by more than the IoU bound
        grid.setdefault((b[0] // 7, b[1] // 7), []).append(i)
    for (gx, gy), idx in grid.items():
        for i in idx:
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    for j in grid.get((gx + dx, gy + dy), []):
                        if i < j:
                            assert iou(boxes[i], boxes[j]) <= 0.3


@pytest.mark.parametrize("threshold", [0.5, 0.9])
def test_every_kept_peak_beats_the_threshold(threshold):
    rng = np.random.default_rng(9)
    img = rng.random((80, 90)).astype(np.float32)
    for d in detect(img, img[30:40, 40:52], threshold=threshold):
        assert d.score >= threshold


# ---------------------------------------------------------------- numpy twin of the kernels


@pytest.mark.parametrize("method", ["zncc", "cosine", "sqdiff"])
@pytest.mark.parametrize("algorithm", ["fft", "direct"])
@pytest.mark.parametrize("kind", ["integer", "float", "colour"])
def test_numpy_kernels_give_the_numba_scores(method, algorithm, kind):
    """The numpy path (no Numba) scores as the kernels do: bit for bit on
    integer-valued images, to rounding on float ones."""
    from convtool.core import match, match_numpy
    from convtool.detection import _as_planes, _match_planes

    rng = np.random.default_rng(3)
    shape = (41, 53, 3) if kind == "colour" else (41, 53)
    img = rng.integers(0, 256, shape).astype(np.float32)
    if kind == "float":
        img = img / 7.0
    img[5:12, 5:14] = 17.0  # a flat patch: flat windows score by the rule
    t = img[20:24, 30:35] if algorithm == "direct" else img[10:22, 8:27]
    planes, tmpl = _as_planes(img, "image"), _as_planes(t, "template")
    a = _match_planes(planes, tmpl, method, 2, algorithm, core=match)
    b = _match_planes(planes, tmpl, method, 2, algorithm, core=match_numpy)
    if kind == "float":
        np.testing.assert_allclose(b, a, atol=2e-6)
    else:
        np.testing.assert_array_equal(b, a)


def test_numpy_codes_match_the_kernels():
    from convtool.core import match, match_numpy

    for name in ("ZNCC", "COSINE", "SQDIFF", "FLT_EPSILON"):
        assert getattr(match_numpy, name) == getattr(match, name)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), plateau=st.booleans(), thr=st.floats(-1, 1))
def test_numpy_peaks_and_suppression_match_the_kernels(seed, plateau, thr):
    from convtool.core import match, match_numpy

    rng = np.random.default_rng(seed)
    score = rng.random((23, 31)).astype(np.float32) * 2 - 1
    if plateau:
        score = np.round(score * 3) / 3  # ties: the raster-order rule decides
    for sign in (1.0, -1.0):
        ys, xs = match.find_peaks(score, thr, sign)
        ys2, xs2 = match_numpy.find_peaks(score, thr, sign)
        assert ys.tolist() == ys2.tolist() and xs.tolist() == xs2.tolist()
    n = 60
    x0 = np.round(rng.random(n) * 40)
    y0 = np.round(rng.random(n) * 40)
    x1, y1 = x0 + rng.integers(1, 12, n), y0 + rng.integers(1, 12, n)
    cell = float(max((x1 - x0).max(), (y1 - y0).max()))
    for mode, param, c in ((0, 0.3, cell), (1, 5.0, 5.0)):
        for max_keep in (0, 4):
            want = match.greedy_suppress(x0, y0, x1, y1, mode, param, max_keep, c)
            got = match_numpy.greedy_suppress(x0, y0, x1, y1, mode, param, max_keep, c)
            assert got.tolist() == want.tolist()
