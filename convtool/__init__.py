"""convtool: image filtering and CNN building blocks, from the shell and from Python.

The public API is imported lazily, so ``import convtool`` (and ``convtool --help``)
stays fast and never loads Numba until a computation needs it.

Examples
--------
>>> import numpy as np, convtool
>>> img = np.arange(16, dtype=np.float32).reshape(4, 4)
>>> convtool.convolve(img, "identity").shape
(4, 4)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "convolve": "convtool.filtering",
    "filter_bank": "convtool.filtering",
    "pool": "convtool.pooling",
    "kernel": "convtool.kernels",
    "match": "convtool.detection",
    "detect": "convtool.detection",
    "Detection": "convtool.detection",
    "feature_maps": "convtool.network",
    "grid": "convtool.grid",
    "ConvtoolError": "convtool.errors",
    "UsageError": "convtool.errors",
    "InputError": "convtool.errors",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from .detection import Detection, detect, match  # noqa: F401
    from .errors import ConvtoolError, InputError, UsageError  # noqa: F401
    from .filtering import convolve, filter_bank  # noqa: F401
    from .grid import grid  # noqa: F401
    from .kernels import kernel  # noqa: F401
    from .network import feature_maps  # noqa: F401
    from .pooling import pool  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'convtool' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
