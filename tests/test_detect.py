"""convtool.match / convtool.detect against OpenCV and a float64 brute-force reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import load_sample
from hypothesis import given, settings
from hypothesis import strategies as st

import convtool
from convtool.detection import Detection, detect, match, parse_scales, place_scores, resize
from convtool.errors import UsageError


@pytest.fixture(scope="module")
def coins() -> np.ndarray:
    """384x303 gray coins, float32 0..255."""
    return load_sample("coins.png")


CV2 = {
    "zncc": cv2.TM_CCOEFF_NORMED,
    "cosine": cv2.TM_CCORR_NORMED,
    "sqdiff": cv2.TM_SQDIFF_NORMED,
}


def reference(image: np.ndarray, template: np.ndarray, method: str) -> np.ndarray:
    """Plain float64 numpy: every window explicitly, OpenCV's formulas and flat rules."""
    img = np.asarray(image, np.float64)
    t = np.asarray(template, np.float64)
    if img.ndim == 2:
        img = img[..., None]
    if t.ndim == 2:
        t = t[..., None]
    h, w = t.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(img, (h, w), axis=(0, 1))  # (Ho,Wo,C,h,w)
    t = np.moveaxis(t, -1, 0)  # (C,h,w)
    n = h * w
    eps = float(np.finfo(np.float32).eps)
    raw_q = (win**2).sum(axis=(2, 3, 4))
    if method == "zncc":
        wc = win - win.mean(axis=(3, 4), keepdims=True)
        tc = t - t.mean(axis=(1, 2), keepdims=True)
        num = np.einsum("yxcij,cij->yx", wc, tc)
        var = (wc**2).sum(axis=(2, 3, 4))
        tvar = (tc**2).sum()
        flat_t = tvar <= min(0.5, 10 * eps * (t**2).sum())
        flat = (var <= np.minimum(0.5, 10 * eps * raw_q)) | flat_t
        with np.errstate(divide="ignore", invalid="ignore"):
            r = num / np.sqrt(var * tvar)
        r = np.where(flat, 0.0, np.clip(r, -1, 1))
    else:
        corr = np.einsum("yxcij,cij->yx", win, t)
        tsq = (t**2).sum()
        flat = (raw_q <= 0) | (tsq <= 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            if method == "cosine":
                r = np.where(flat, 0.0, np.clip(corr / np.sqrt(raw_q * tsq), -1, 1))
            else:
                r = (raw_q - 2 * corr + tsq) / np.sqrt(raw_q * tsq)
                r = np.where(flat, 1.0, np.clip(r, 0, 1))
    assert n > 0
    return r


def box_sums(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sum of every h x w window (valid placement), float64, summed over channels."""
    a = np.asarray(a, np.float64)
    if a.ndim == 2:
        a = a[..., None]
    sat = np.zeros((a.shape[0] + 1, a.shape[1] + 1, a.shape[2]))
    sat[1:, 1:] = a.cumsum(0).cumsum(1)
    return (sat[h:, w:] - sat[:-h, w:] - sat[h:, :-w] + sat[:-h, :-w]).sum(-1)


def opencv_condition(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """How much OpenCV's float32 zncc amplifies rounding: |P||T| / (|P - mean||T - mean|).

    OpenCV computes the zncc numerator as a raw correlation minus a mean term
    in float32; where the window is nearly flat that difference cancels and
    its error grows by this factor.
    """
    img = np.asarray(image, np.float64)
    t = np.asarray(template, np.float64)
    h, w = t.shape[:2]
    n = h * w
    raw = box_sums(img**2, h, w)
    if img.ndim == 2:
        var = raw - box_sums(img, h, w) ** 2 / n
    else:
        sums = [box_sums(img[..., c], h, w) for c in range(img.shape[2])]
        var = raw - sum(s**2 for s in sums) / n
    tc = t - t.mean(axis=(0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(raw * (t**2).sum()) / np.sqrt(np.maximum(var, 0) * (tc**2).sum())


# (sample, template top, left, height, width): real objects, gray and colour
CASES = [
    ("camera.png", 120, 200, 48, 40),  # the cameraman's head and camera
    ("coins.png", 20, 15, 40, 40),  # a coin
    ("astronaut.png", 70, 190, 64, 56),  # the face
    ("chelsea.png", 80, 130, 30, 50),  # the cat's eyes
    ("text.png", 60, 100, 20, 24),  # a letter
]


@pytest.mark.parametrize("method", ["zncc", "cosine", "sqdiff"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_equals_opencv_on_samples(case, method):
    name, y, x, h, w = case
    img = load_sample(name)
    t = img[y : y + h, x : x + w].copy()
    ours = match(img, t, method)
    theirs = cv2.matchTemplate(img, t, CV2[method])
    assert ours.shape == theirs.shape == (img.shape[0] - h + 1, img.shape[1] - w + 1)
    assert ours.dtype == np.float32
    err = np.abs(ours - theirs)
    if method == "zncc":
        # OpenCV's own float32 rounding exceeds 1e-4 in nearly flat windows
        # (sky, paper); compare where it is well conditioned, which must be most.
        ok = opencv_condition(img, t) < 100
        assert ok.mean() > 0.6
        assert err[ok].max() <= 1e-4
    else:
        assert err.max() <= 1e-4
    # the true place is the best
    best = np.unravel_index(np.argmax(ours if method != "sqdiff" else -ours), ours.shape)
    assert best == (y, x)


@pytest.mark.parametrize("method", ["zncc", "cosine", "sqdiff"])
@pytest.mark.parametrize("algorithm", ["fft", "direct"])
@pytest.mark.parametrize("colour", [False, True], ids=["gray", "colour"])
def test_equals_float64_reference(method, algorithm, colour):
    img = load_sample("astronaut.png")[100:220, 150:290]
    if not colour:
        img = img.mean(axis=-1)
    for y, x, h, w in [(30, 40, 5, 4), (50, 20, 17, 23), (0, 0, 1, 1), (10, 5, 2, 30)]:
        t = img[y : y + h, x : x + w]
        ours = match(img, t, method, algorithm=algorithm)
        np.testing.assert_allclose(ours, reference(img, t, method), atol=2e-6, rtol=0)


def test_colour_image_gray_template_uses_every_channel(astronaut):
    img = astronaut[:100, :120]
    t = img[20:35, 30:50, 1]
    ours = match(img, t)
    np.testing.assert_allclose(ours, reference(img, np.stack([t] * 3, -1), "zncc"), atol=2e-6)


@settings(max_examples=25, deadline=None)
@given(
    hh=st.integers(1, 40),
    ww=st.integers(1, 40),
    fh=st.floats(0.05, 1.0),
    fw=st.floats(0.05, 1.0),
    channels=st.sampled_from([0, 1, 3]),
    integer=st.booleans(),
    method=st.sampled_from(["zncc", "cosine", "sqdiff"]),
    seed=st.integers(0, 2**16),
)
def test_random_shapes_match_reference(hh, ww, fh, fw, channels, integer, method, seed):
    rng = np.random.default_rng(seed)
    shape = (hh, ww) if channels == 0 else (hh, ww, channels)
    img = rng.random(shape) * 255
    if integer:
        img = np.round(img)
    img = img.astype(np.float32)
    h, w = max(1, int(hh * fh)), max(1, int(ww * fw))
    t = rng.random((h, w) + shape[2:]).astype(np.float32) * 100
    ours = match(img, t, method)
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, reference(img, t, method), atol=1e-5, rtol=0)


def test_fft32_is_close(camera, astronaut):
    for img, (y, x, h, w) in [(camera, (120, 200, 48, 40)), (astronaut, (70, 190, 64, 56))]:
        t = img[y : y + h, x : x + w]
        fast = match(img, t, algorithm="fft32")
        exact = match(img, t, algorithm="fft")
        err = np.abs(fast - exact)
        assert np.quantile(err, 0.999) < 2e-5  # float32 rounding, large only in dark/flat
        assert err.max() < 2e-3  # windows (OpenCV's own zncc errs up to 4e-4 on these)


def test_fft_and_direct_agree_on_large_image(camera):
    t = camera[200:206, 300:305]
    a = match(camera, t, algorithm="fft")
    b = match(camera, t, algorithm="direct")
    assert np.abs(a - b).max() < 1e-5


@pytest.mark.parametrize("method,flat_score", [("zncc", 0.0), ("cosine", 0.0), ("sqdiff", 1.0)])
def test_constant_image_has_defined_scores(camera, method, flat_score):
    t = camera[100:110, 100:112]
    const = np.full((50, 60), 7.0, np.float32)
    r = match(const, t, method)
    assert np.isfinite(r).all()
    np.testing.assert_allclose(r, reference(const, t, method), atol=1e-6)
    if method == "zncc":
        assert (r == 0).all()  # every window is flat: no similarity
    zero = np.zeros((50, 60), np.float32)
    rz = match(zero, t, method)
    assert (rz == flat_score).all()
    assert (cv2.matchTemplate(zero, t, CV2[method]) == flat_score).all()
    # a flat patch inside a real image
    img = camera.copy()
    img[:30, :40] = 0.5
    rf = match(img, t, method)
    assert np.isfinite(rf).all()
    if method == "zncc":
        assert (rf[:21, :29] == 0).all()


@pytest.mark.parametrize("method", ["zncc", "cosine", "sqdiff"])
def test_flat_template_has_defined_scores(camera, method):
    flat = np.full((9, 9), 42.0, np.float32)
    r = match(camera, flat, method)
    assert np.isfinite(r).all()
    if method == "zncc":
        # OpenCV returns 1 everywhere here; convtool returns 0 (no pattern to match)
        assert (r == 0).all()
        assert (cv2.matchTemplate(camera, flat, cv2.TM_CCOEFF_NORMED) == 1).all()
    zero = np.zeros((9, 9), np.float32)
    rz = match(camera, zero, method)
    expected = 1.0 if method == "sqdiff" else 0.0
    assert (rz == expected).all()
    if method != "zncc":
        assert (cv2.matchTemplate(camera, zero, CV2[method]) == expected).all()


def test_scores_stay_in_range_on_extreme_values():
    rng = np.random.default_rng(3)
    img = (rng.random((64, 64)) * 1e6).astype(np.float32)
    img[10:30, 10:30] = 1e6  # flat and huge
    img[40:, 40:] = 1e-3 * rng.random((24, 24))  # tiny
    t = img[5:15, 5:15].copy()
    for method in ("zncc", "cosine", "sqdiff"):
        r = match(img, t, method)
        assert np.isfinite(r).all()
        lo = 0.0 if method == "sqdiff" else -1.0
        assert r.min() >= lo and r.max() <= 1.0


def test_template_larger_than_image_is_a_clear_error(camera):
    with pytest.raises(UsageError, match="larger than the image"):
        match(camera[:20, :30], camera[:25, :10])
    with pytest.raises(UsageError, match="larger than the image"):
        detect(camera[:20, :30], camera[:10, :31])


@pytest.mark.parametrize(
    "image,template,message",
    [
        (np.zeros((9, 9, 3)), np.zeros((3, 3, 2)), "channels"),
        (np.full((9, 9), np.nan), np.zeros((3, 3)), "NaN"),
        (np.zeros((9, 9, 3, 1)), np.zeros((3, 3)), "2-D"),
        (np.zeros((0, 9)), np.zeros((1, 1)), "empty"),
        (np.zeros((9, 9), bool), np.zeros((3, 3)), "real-valued"),
    ],
)
def test_bad_inputs(image, template, message):
    with pytest.raises(UsageError, match=message):
        match(image, template)


def test_bad_options(camera):
    t = camera[:10, :10]
    with pytest.raises(UsageError, match="unknown method"):
        match(camera, t, "sad")
    with pytest.raises(UsageError, match="scales"):
        detect(camera, t, scales="1:2")
    with pytest.raises(UsageError, match="nms-iou"):
        detect(camera, t, nms_iou=2)
    with pytest.raises(UsageError, match="max"):
        detect(camera, t, max_detections=0)


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize("gain,offset", [(1.0, 40.0), (1.6, -30.0), (0.5, 10.0)])
def test_brightened_or_contrast_scaled_crop_found_at_its_place(camera, gain, offset):
    y, x, h, w = 300, 250, 40, 36
    t = camera[y : y + h, x : x + w] * gain + offset
    dets = detect(camera, t, max_detections=3)
    assert (dets[0].x, dets[0].y, dets[0].width, dets[0].height) == (x, y, w, h)
    assert dets[0].score > 0.999
    assert dets[0].cx == x + w / 2 and dets[0].cy == y + h / 2


def test_colour_crop_found(astronaut):
    y, x = 210, 330
    t = np.clip(astronaut[y : y + 50, x : x + 45] * 1.2 + 10, 0, 255)
    d = detect(astronaut, t)[0]
    assert (d.x, d.y) == (x, y)


def test_crop_rescaled_by_1_5_found_with_scales(coins):
    y, x, h, w = 18, 12, 44, 44  # one coin
    crop = coins[y : y + h, x : x + w]
    big = cv2.resize(crop, (66, 66), interpolation=cv2.INTER_LINEAR)  # x1.5
    without = detect(coins, big, max_detections=1)
    assert not without or (abs(without[0].x - x) > 3 or without[0].score < 0.9)
    dets = detect(coins, big, scales="0.5:1:7", max_detections=5)
    best = dets[0]
    assert abs(best.scale - 2 / 3) < 0.06
    assert abs(best.x - x) <= 2 and abs(best.y - y) <= 2
    assert abs(best.width - w) <= 3 and best.score > 0.9


def test_one_object_gives_one_detection(camera):
    t = camera[300:340, 250:286]
    dets = detect(camera, t, threshold=0.5)
    near = [d for d in dets if abs(d.x - 250) < 36 and abs(d.y - 300) < 40]
    assert len(near) == 1


def test_max_and_threshold(coins):
    t = coins[18:62, 12:56]
    all_dets = detect(coins, t, threshold=0.5)
    assert len(all_dets) > 5
    assert [d.score for d in all_dets] == sorted((d.score for d in all_dets), reverse=True)
    assert all(d.score >= 0.5 for d in all_dets)
    assert detect(coins, t, threshold=0.5, max_detections=3) == all_dets[:3]


def test_sqdiff_lower_is_better(coins):
    t = coins[18:62, 12:56]
    dets = detect(coins, t, "sqdiff", threshold=0.05)
    assert dets[0].score == pytest.approx(0.0, abs=1e-6)
    assert [d.score for d in dets] == sorted(d.score for d in dets)
    assert all(d.score <= 0.05 for d in dets)


def test_min_distance_alternative(coins):
    t = coins[18:62, 12:56]
    dets = detect(coins, t, threshold=0.3, min_distance=30)
    centres = [(d.cx, d.cy) for d in dets]
    for i, a in enumerate(centres):
        for b in centres[:i]:
            assert max(abs(a[0] - b[0]), abs(a[1] - b[1])) >= 30


def test_nothing_found_is_an_empty_list(camera):
    text = load_sample("text.png")
    assert detect(text, camera[200:260, 200:260]) == []


def test_public_api_is_lazy_and_documented():
    assert convtool.match is match and convtool.detect is detect
    assert convtool.Detection is Detection
    d = Detection(3, 4, 10, 6, 0.5, 2.0)
    assert d.as_dict() == {
        "x": 3,
        "y": 4,
        "width": 10,
        "height": 6,
        "cx": 8.0,
        "cy": 7.0,
        "score": 0.5,
        "scale": 2.0,
    }


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize("size", [(20, 30), (17, 11), (5, 7), (1, 1), (40, 41)])
def test_resize_matches_opencv(camera, size):
    src = camera[100:140, 200:241]
    ours = resize(src, *size)
    smaller = size[0] <= src.shape[0] and size[1] <= src.shape[1]
    interp = cv2.INTER_AREA if smaller else cv2.INTER_LINEAR
    theirs = cv2.resize(src, (size[1], size[0]), interpolation=interp)
    assert ours.shape == size
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_resize_up_matches_opencv_bilinear(camera):
    src = camera[100:120, 200:230]
    ours = resize(src, 30, 45)
    theirs = cv2.resize(src, (45, 30), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_parse_scales():
    assert parse_scales("0.5:2:3") == pytest.approx((0.5, 1.0, 2.0))
    assert parse_scales("0.5:2:7")[3] == pytest.approx(1.0)
    assert parse_scales("0.8,1,1.25") == (0.8, 1.0, 1.25)
    assert parse_scales(None) == (1.0,)
    for bad in ("0:1:3", "1:2:0", "a,b", "-1", "1:2"):
        with pytest.raises(UsageError):
            parse_scales(bad)


def test_place_scores_puts_each_score_at_the_window_centre():
    scores = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    full = place_scores(scores, (5, 7), (4, 5), "zncc")
    assert full.shape == (5, 7)
    assert full[2, 2] == 1 and full[3, 4] == 6  # top-left window -> (h//2, w//2)
    assert full[0, 0] == 1 and full[4, 6] == 1  # border: the worst (minimum)
    assert place_scores(scores, (5, 7), (4, 5), "sqdiff")[0, 0] == 6  # worst = max
