"""A classifier's output as ranked classes: probabilities, top-k, label files.

A network whose last layer gives one value per class (a flat vector, or
C x 1 x 1 after global pooling) is a classifier. Its values are taken as
probabilities when they already are (none negative, summing to 1 within
1e-3: the output of a softmax); otherwise they are logits and a softmax
turns them into probabilities.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import UsageError

#: How far from 1 the sum of a vector of probabilities may be.
SUM_TOLERANCE = 1e-3


def is_class_vector(shape: Sequence[int]) -> bool:
    """True for a classifier's output shape: ``(N,)`` or ``(N, 1, 1)``.

    Examples
    --------
    >>> is_class_vector((1000,)), is_class_vector((10, 1, 1)), is_class_vector((3, 8, 8))
    (True, True, False)
    """
    shape = tuple(int(v) for v in shape)
    return len(shape) >= 1 and all(v == 1 for v in shape[1:])


def probabilities(scores: np.ndarray) -> tuple[np.ndarray, bool]:
    """Class probabilities from a classifier's output, and whether a softmax was applied.

    Examples
    --------
    >>> import numpy as np
    >>> p, applied = probabilities(np.array([0.0, np.log(3.0)]))
    >>> [round(float(v), 3) for v in p], applied
    ([0.25, 0.75], True)
    >>> probabilities(np.array([0.2, 0.8]))[1]
    False
    """
    v = np.asarray(scores, dtype=np.float64).reshape(-1)
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise UsageError("the classifier's output is empty or not finite")
    if v.min() >= 0 and abs(v.sum() - 1.0) <= SUM_TOLERANCE:
        return v, False
    e = np.exp(v - v.max())
    return e / e.sum(), True


@dataclass(frozen=True)
class Ranked:
    """One of the top classes: 1-based ``rank``, class ``index``, ``label``, ``probability``."""

    rank: int
    index: int
    label: str
    probability: float


def top_k(scores: np.ndarray, k: int = 5, labels: Sequence[str] | None = None) -> list[Ranked]:
    """The ``k`` most probable classes, most probable first (ties: lower index first).

    Parameters
    ----------
    scores : the classifier's output (probabilities or logits, see :func:`probabilities`)
    k : how many classes (at most the number of classes)
    labels : one name per class; default the class index as text

    Examples
    --------
    >>> import numpy as np
    >>> [(r.rank, r.label, round(r.probability, 2)) for r in top_k(
    ...     np.array([0.1, 0.6, 0.3]), 2, ["cat", "dog", "fox"])]
    [(1, 'dog', 0.6), (2, 'fox', 0.3)]
    """
    p, _ = probabilities(scores)
    if k < 1:
        raise UsageError(f"top k must be >= 1, got {k}")
    if labels is not None and len(labels) != p.size:
        raise UsageError(f"{len(labels)} labels for {p.size} classes")
    order = np.argsort(-p, kind="stable")[: min(k, p.size)]
    return [
        Ranked(rank, int(i), labels[i] if labels is not None else str(int(i)), float(p[i]))
        for rank, i in enumerate(order, start=1)
    ]


def read_labels(path: str | os.PathLike) -> list[str]:
    """Class names from a text file, one per line (trailing blank lines ignored).

    Raises
    ------
    UsageError
        The file is missing, unreadable, not UTF-8 text, or has no labels.
    """
    name = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [line.strip() for line in fh.read().splitlines()]
    except FileNotFoundError:
        raise UsageError(f"labels file {name} does not exist") from None
    except UnicodeDecodeError:
        raise UsageError(f"labels file {name} is not UTF-8 text (one label per line)") from None
    except OSError as exc:
        raise UsageError(f"cannot read labels file {name}: {exc.strerror}") from None
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise UsageError(f"labels file {name} is empty: write one label per line")
    return lines
