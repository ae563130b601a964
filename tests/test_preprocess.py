"""convtool.preprocess against Pillow's resize, PyTorch's antialiased interpolation and numpy."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_sample
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from convtool.errors import UsageError
from convtool.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocess,
    center_crop,
    parse_size,
    preprocess,
    resize,
    shorter_side_size,
    stats,
)


def pil_resize(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    """Pillow's BILINEAR resize of a float plane (mode F: no rounding)."""
    im = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    return np.asarray(im.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)


@pytest.fixture(scope="module")
def chelsea() -> np.ndarray:
    """300x451x3 RGB cat, float32 0..255."""
    return load_sample("chelsea.png")


def close(a, b, rtol=1e-5):
    np.testing.assert_allclose(a, b, atol=rtol * max(1.0, float(np.abs(b).max())), rtol=0)


@pytest.mark.parametrize("size", [(256, 384), (100, 77), (600, 640), (13, 500)])
def test_resize_equals_pillow_bilinear_on_a_photo(astronaut, size):
    out = resize(astronaut, *size)
    assert out.shape == size + (3,) and out.dtype == np.float32
    ref = np.stack([pil_resize(astronaut[..., c], *size) for c in range(3)], axis=-1)
    close(out, ref)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 40), st.integers(1, 40), st.integers(1, 90), st.integers(1, 90),
    st.integers(0, 2**31 - 1),
)  # fmt: skip
def test_resize_equals_pillow_on_random_shapes(h, w, oh, ow, seed):
    img = np.random.default_rng(seed).normal(size=(h, w)).astype(np.float32)
    close(resize(img, oh, ow), pil_resize(img, oh, ow))


def test_resize_equals_torch_antialiased_bilinear(chelsea):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(np.ascontiguousarray(chelsea.transpose(2, 0, 1)))[None]
    for size in ((150, 200), (91, 67), (500, 700)):
        ref = torch.nn.functional.interpolate(
            x, size=size, mode="bilinear", antialias=True, align_corners=False
        )[0].numpy().transpose(1, 2, 0)  # fmt: skip
        close(resize(chelsea, *size), ref, rtol=1e-4)


def test_resize_keeps_a_constant_and_exact_small_cases():
    np.testing.assert_allclose(resize(np.full((37, 53), 7.0), 11, 90), 7.0, rtol=1e-6)
    assert resize(np.array([[0.0, 4.0]]), 1, 4).tolist() == [[0.0, 1.0, 3.0, 4.0]]


def test_shorter_side_and_crop_follow_torchvision():
    # Resize(256): shorter side 256, the longer one truncated
    assert shorter_side_size(480, 640, 256) == (256, 341)
    assert shorter_side_size(333, 500, 256) == (256, 384)
    assert shorter_side_size(500, 333, 256) == (384, 256)
    # CenterCrop: int(round((H - h) / 2)), Python's rounding (half to even)
    img = np.arange(7 * 8).reshape(7, 8)
    out = center_crop(img, 4, 3)
    top, left = int(round(3 / 2)), int(round(5 / 2))
    assert (top, left) == (2, 2)
    np.testing.assert_array_equal(out, img[2:6, 2:5])
    with pytest.raises(UsageError, match="cannot crop"):
        center_crop(img, 8, 3)


def test_whole_chain_equals_a_numpy_reference(astronaut):
    x = preprocess(astronaut, 224, mean="imagenet", std="imagenet")
    # reference: the same resize, then crop, scale and normalise by hand in float64
    h, w = shorter_side_size(512, 512, 256)
    big = np.stack([pil_resize(astronaut[..., c], h, w) for c in range(3)], axis=-1)
    top = int(round((h - 224) / 2))
    ref = (big[top : top + 224, top : top + 224] / 255.0 - np.array(IMAGENET_MEAN)) / np.array(
        IMAGENET_STD
    )
    assert x.shape == (224, 224, 3) and x.dtype == np.float32
    close(x, ref, rtol=1e-5)


def test_bgr_255_scale_and_preset_scaling(chelsea):
    x = preprocess(chelsea, None, pixel_range=255, bgr=True, mean="imagenet", std="imagenet")
    mean = np.array(IMAGENET_MEAN[::-1]) * 255
    std = np.array(IMAGENET_STD[::-1]) * 255
    close(x, (chelsea[..., ::-1] - mean) / std)
    assert stats("imagenet", "std", pixel_range=255) == (58.395, 57.12, 57.375)
    # numbers are taken as given, in the model's channel order
    y = preprocess(chelsea, None, pixel_range=1, mean="0.5", std="0.25, 0.5, 1")
    close(y, (chelsea / 255.0 - 0.5) / np.array([0.25, 0.5, 1.0]))


def test_channels_and_scales():
    rgb = np.random.default_rng(1).integers(0, 65536, (20, 30, 3)).astype(np.float32)
    gray = preprocess(rgb, None, channels=1, full_scale=65535)
    ref = (rgb @ np.array([0.299, 0.587, 0.114])) / 65535
    close(gray[..., 0], ref)
    assert gray.shape == (20, 30, 1)
    rep = preprocess(rgb[..., 0], None, channels=3, pixel_range=None)
    assert rep.shape == (20, 30, 3) and np.array_equal(rep[..., 2], rgb[..., 0])
    with pytest.raises(UsageError, match="takes 2 channels"):
        preprocess(rgb, None, channels=2)


def test_default_resize_and_errors():
    assert Preprocess(size=(224, 224)).resize_to(480, 640) == (256, 341)
    assert Preprocess(size=(224, 320)).resize_to(600, 400) == (547, 365)
    assert Preprocess(size=(32, 32), resize=(40, 50)).resize_to(480, 640) == (40, 50)
    with pytest.raises(UsageError, match="smaller than the input size"):
        Preprocess(size=(224, 224), resize=200).resize_to(480, 640)
    for bad in ("0", "ax3", "1x2x3", ""):
        with pytest.raises(UsageError):
            parse_size(bad)
    for bad in ("1,2", "a", "nan"):
        with pytest.raises(UsageError):
            stats(bad, "mean")
    with pytest.raises(UsageError, match="std must not be zero"):
        Preprocess(std=(0.0,))
    with pytest.raises(UsageError, match="3 mean values for 1 channels"):
        preprocess(np.zeros((4, 4)), None, mean=[1.0, 2.0, 3.0])


def test_the_preprocessing_api_does_not_import_pillow():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from convtool.preprocess import preprocess\n"
        "import convtool.classify, convtool.report\n"
        "preprocess(np.zeros((40, 50, 3), np.float32), 32, mean='imagenet', std='imagenet')\n"
        "assert 'PIL' not in sys.modules, 'Pillow was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
