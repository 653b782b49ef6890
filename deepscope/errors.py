"""Exceptions that the CLI turns into one-line messages.

Raise these for anything a user can fix (bad value, missing file, wrong model); the CLI prints
``deepscope: error: <message>`` and exits with a non-zero code, without a traceback.
"""

from __future__ import annotations


class DeepscopeError(Exception):
    """Base class for errors that carry a user-facing one-line message."""

    exit_code: int = 2


class InputError(DeepscopeError, ValueError):
    """A value, file or directory given by the user is not acceptable.

    The message names the offending value and what was expected, e.g.
    ``"objective '60x' is unknown; expected one of: 40x, 100x"``.
    """


class HardwareError(DeepscopeError, RuntimeError):
    """A device (camera, stage, turret) failed or timed out."""

    exit_code = 3


class DiskFullError(DeepscopeError, OSError):
    """Writing output failed because the disk is full; what was complete before is intact."""

    exit_code = 4
