"""User-facing errors.

Every error a user can cause is a :class:`ConvtoolError`: the CLI prints its
message as one line on stderr and exits with its ``exit_code``; anything else
that escapes is a bug and keeps its traceback. The subclasses also derive from
``ValueError`` so that Python callers can catch them the usual way.
"""

from __future__ import annotations

#: Exit codes shared by every command (``detect`` maps "nothing found" to 1 too).
EXIT_OK = 0
EXIT_INPUT_FAILED = 1
EXIT_USAGE = 2


class ConvtoolError(Exception):
    """An error caused by the user's input; its message is one line."""

    exit_code = EXIT_USAGE


class UsageError(ConvtoolError, ValueError):
    """Bad options or arguments: unknown kernel, stride 0, output too small."""

    exit_code = EXIT_USAGE


class InputError(ConvtoolError, ValueError):
    """One input file could not be used (not an image, truncated, too big).

    In a batch the other inputs go on; the run exits with 1.
    """

    exit_code = EXIT_INPUT_FAILED
