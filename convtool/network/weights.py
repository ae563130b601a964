"""Where a layer's numbers come from: named filter banks, seeded random init, .npy/.npz files.

Nothing here knows about graphs or shapes of maps; the operators in
:mod:`convtool.network.ops` ask for arrays and check them against the input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import UsageError

#: Named filter banks -> kernel specs (resolved by convtool.kernels).
BANKS: dict[str, tuple[str, ...]] = {
    "edges": ("sobel-x", "sobel-y", "laplacian"),
    "gabor": tuple(f"gabor:theta={t}" for t in (0, 45, 90, 135)),
    "log": ("log:sigma=1", "log:sigma=2", "log:sigma=3"),
}

INITS = ("he", "xavier")


def _fit(stack: list[np.ndarray]) -> np.ndarray:
    """Centre 2-D kernels of different sizes in one (N, K, K) zero-padded stack."""
    k = max(max(a.shape) for a in stack)
    out = np.zeros((len(stack), k, k), dtype=np.float32)
    for i, a in enumerate(stack):
        top = (k - a.shape[0]) // 2
        left = (k - a.shape[1]) // 2
        out[i, top : top + a.shape[0], left : left + a.shape[1]] = a
    return out


def named_filters(specs: Sequence[str], where: str = "conv") -> tuple[np.ndarray, tuple[str, ...]]:
    """Resolve bank names and kernel specs into an (N, K, K) stack and N labels.

    Examples
    --------
    >>> w, labels = named_filters(["edges"])
    >>> w.shape[0] == len(labels)
    True
    """
    from .. import kernels

    stack: list[np.ndarray] = []
    labels: list[str] = []
    for spec in specs:
        names = BANKS.get(spec.strip().lower(), (spec,))
        for one in names:
            try:
                ks = kernels.resolve(one)
            except UsageError as exc:
                raise UsageError(f"{where}: {exc}") from None
            single = len(ks.weights) == 1
            for label, weight in zip(ks.labels, ks.weights, strict=True):
                arr = np.asarray(weight, dtype=np.float32)
                if arr.ndim != 2:
                    raise UsageError(f"{where}: kernel {one!r} is not 2-D")
                stack.append(arr)
                labels.append(one if single else str(label))
    return _fit(stack), tuple(labels)


def random_weights(
    shape: tuple[int, ...], fan_in: int, fan_out: int, init: str, seed: int
) -> np.ndarray:
    """He (``2/fan_in``) or Xavier (``2/(fan_in+fan_out)``) normal weights, seeded.

    Examples
    --------
    >>> random_weights((2, 3), 3, 2, "he", 0).dtype
    dtype('float32')
    """
    std = math.sqrt(2.0 / fan_in) if init == "he" else math.sqrt(2.0 / (fan_in + fan_out))
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * std).astype(np.float32)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_arrays(path: Path, where: str) -> dict[str, np.ndarray]:
    """Every array of a ``.npy`` (key ``""``) or ``.npz`` file, as real float32.

    Raises
    ------
    UsageError
        A missing, unreadable, damaged or foreign file, object arrays, or
        values that are not finite real numbers, naming ``where`` (the layer)
        and the file.
    """
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except FileNotFoundError:
        raise UsageError(f"{where}: weights file {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"{where}: cannot read weights file {path}: {exc.strerror}") from None
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
        raise UsageError(
            f"{where}: weights file {path} is not a .npy or .npz file (numpy.save / numpy.savez)"
        )
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                arrays = {key: np.asarray(data[key]) for key in data.keys()}
        else:
            arrays = {"": np.asarray(data)}
    except Exception as exc:  # damaged: zip, zlib, header, object arrays...
        raise UsageError(
            f"{where}: cannot read weights file {path} (damaged, or not plain numpy arrays): "
            f"{_first_line(exc)}"
        ) from None
    for key, arr in arrays.items():
        what = f"array {key!r}" if key else "weights"
        if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
            raise UsageError(f"{where}: {what} in {path.name} must be real numbers")
        if not np.all(np.isfinite(arr)):
            raise UsageError(f"{where}: {what} in {path.name} contain NaN or infinity")
    return {key: arr.astype(np.float32) for key, arr in arrays.items()}


def load_weights(path: Path, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A weight array and optional bias from ``.npy`` or ``.npz``.

    An ``.npz`` holds ``weight`` (or ``weights``, or its only non-bias array)
    and optionally ``bias``.
    """
    arrays = load_arrays(path, where)
    if "" in arrays:
        return arrays[""], None
    keys = list(arrays)
    key = "weight" if "weight" in keys else "weights" if "weights" in keys else None
    if key is None:
        others = [k for k in keys if k != "bias"]
        if len(others) != 1:
            raise UsageError(
                f"{where}: {path.name} must hold an array named 'weight' (and optionally "
                f"'bias'); it holds {', '.join(keys) or 'nothing'}"
            )
        key = others[0]
    return arrays[key], arrays.get("bias")
