"""Shell-completion candidates for option values (``--install-completion``).

Each function takes what the user has typed so far and returns the matching
values, with a short help where the shell shows one (zsh, fish). They import
what they need when the shell asks, never at start-up: ``convtool --help``
does not pay for them, and only kernel-name completion imports numpy (the
kernel registry), never Numba.
"""

from __future__ import annotations


def _match(incomplete: str, values) -> list:
    """The candidates (strings or (value, help) pairs) that start with ``incomplete``."""
    typed = incomplete.lower()
    out = []
    for v in values:
        name = v[0] if isinstance(v, tuple) else v
        if name.lower().startswith(typed):
            out.append(v)
    return out


def kernel_names(incomplete: str) -> list[tuple[str, str]]:
    """Built-in kernel names, directional variants included (``sobel-x``, ``kirsch-ne``)."""
    from ..kernels import list_kernels

    rows = list_kernels()
    return _match(incomplete, [(row["name"], row["meaning"]) for row in rows])


def pad_modes(incomplete: str) -> list[str]:
    """Pad modes and their aliases (``--pad``)."""
    from ..modes import PAD_ALIASES, PAD_MODES

    names = list(PAD_MODES) + sorted(set(PAD_ALIASES) - set(PAD_MODES))
    return _match(incomplete, names)


def pool_modes(incomplete: str) -> list[str]:
    """Pooling modes (``pool --mode``)."""
    from ..pooling import MODES

    return _match(incomplete, MODES)


def detect_methods(incomplete: str) -> list[tuple[str, str]]:
    """Similarity measures of ``detect --method``."""
    from ..detection import METHODS

    what = {
        "zncc": "zero-mean normalised cross-correlation (default)",
        "cosine": "cos theta of the raw vectors",
        "sqdiff": "normalised squared difference, lower is better",
    }
    return _match(incomplete, [(m, what.get(m, "")) for m in METHODS])


def scales(incomplete: str) -> list[str]:
    """``--scale`` choices of convolve and pool."""
    from ._common import SCALES

    return _match(incomplete, SCALES)


def combines(incomplete: str) -> list[str]:
    """``convolve --combine`` choices."""
    from .convolve import COMBINES

    return _match(incomplete, COMBINES)
