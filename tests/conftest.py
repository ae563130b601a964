"""Shared fixtures. Append-only: each engineer adds fixtures, nobody rewrites others'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The bundled sample images (see samples/PROVENANCE.md)."""
    return SAMPLES


def load_sample(name: str) -> np.ndarray:
    """A sample image as a float32 array on its own 0..255 scale (no Pillow in the API)."""
    from PIL import Image

    with Image.open(SAMPLES / name) as im:
        return np.asarray(im, dtype=np.float32)


@pytest.fixture(scope="session")
def camera() -> np.ndarray:
    """512x512 gray cameraman, float32 0..255."""
    return load_sample("camera.png")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """512x512x3 RGB astronaut, float32 0..255."""
    return load_sample("astronaut.png")


# tests/data/make_onnx_fixtures.py exports the ONNX fixtures with torch, run by
# hand; torch is not a test dependency, so the doctest collector must not import it
collect_ignore = ["data/make_onnx_fixtures.py"]
