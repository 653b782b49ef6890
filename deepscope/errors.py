"""Exceptions that the CLI turns into one-line messages.

Raise these for anything a user can fix (bad value, missing file, wrong model); the CLI prints
``deepscope: error: <message>`` and exits with the class's ``exit_code`` (2 bad input, 3
hardware, 4 disk), without a traceback. :func:`app.cli.error_line` maps every other
exception a user can cause (``OSError``, ``UnicodeDecodeError``, ``MemoryError``) the same way.
"""

from __future__ import annotations

from typing import Any

#: how much of an offending value an error line shows (a YAML alias bomb must not print 25 MB)
SHOWN_CHARS = 80


def shown(value: Any) -> str:
    """``repr(value)`` cut to :data:`SHOWN_CHARS` characters for an error line."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 5]}...({len(text)} chars)"


class DeepscopeError(Exception):
    """Base class for errors that carry a user-facing one-line message."""

    exit_code: int = 2


class InputError(DeepscopeError, ValueError):
    """A value, file or directory given by the user is not acceptable.

    The message names the offending value and what was expected, e.g.
    ``"objective '60x' is unknown; expected one of: 40x, 100x"``.
    """


class LockedError(InputError):
    """An output directory is in use by another deepscope process (named in the message)."""


class HardwareError(DeepscopeError, RuntimeError):
    """A device (camera, stage, turret) failed or timed out."""

    exit_code = 3


class StorageError(DeepscopeError, OSError):
    """Output could not be written (read-only, permission, a directory in the way, disk full)."""

    exit_code = 4


class DiskFullError(StorageError):
    """Writing output failed because the disk is full; what was complete before is intact."""


def describe_validation(errors: list[Any], at_most: int = 3) -> str:
    """One line for pydantic's ``exc.errors()``: ``loc: message (got value)``, a few at most."""
    parts = []
    for err in errors[:at_most]:
        loc = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{loc}: {err['msg']} (got {shown(err.get('input'))})")
    more = f" (and {len(errors) - at_most} more)" if len(errors) > at_most else ""
    return "; ".join(parts) + more
