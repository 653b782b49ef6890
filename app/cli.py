"""The ``deepscope`` command: one entry point, one subcommand per stage of the pipeline.

Each area registers its own subcommands (``register(subparsers)`` in its ``cli`` module) and
imports heavy dependencies (torch, Qt) only inside the handler, so ``deepscope --help`` is fast.
Errors a user can fix are :class:`~deepscope.errors.DeepscopeError` and print as one line.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

import acquire.cli
import app.demo
import deepscope.info
import gui.cli
import live.cli
import model.export.cli
import model.inference.cli
import model.registration.cli
import model.training.cli
import simulators
import simulators.cli
from deepscope import __version__
from deepscope.atomic import is_disk_full
from deepscope.errors import DeepscopeError, describe_validation
from simulators.targets import SimulatedUsafTarget

log = logging.getLogger("deepscope")

#: Modules that add subcommands, in the order they appear in ``--help``.
COMMAND_MODULES = (
    simulators.cli,  # simulate
    acquire.cli,  # calibrate, acquire
    model.registration.cli,  # register
    model.training.cli,  # train, evaluate
    model.inference.cli,  # enhance
    model.export.cli,  # export
    live.cli,  # live
    gui.cli,  # gui
    app.demo,  # demo
    deepscope.info,  # info
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="deepscope",
        description=(
            "Paired 40x/100x acquisition on a Micro-Manager microscope (or its simulator), "
            "registration, training of the Deep Learning Microscopy network, and live "
            "enhancement of every new 40x frame."
        ),
        epilog="Run 'deepscope demo' for the whole pipeline on the simulated microscope.",
    )
    parser.add_argument("--version", action="version", version=f"deepscope {__version__}")
    # the simulator where areas need one, handed in here (acquire and model do not import it):
    # what --simulate opens, and the USAF target that 'evaluate' measures the MTF on
    parser.set_defaults(simulator=simulators.make_core, bar_target=SimulatedUsafTarget())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _one_line(exc: ValidationError) -> str:
    return f"invalid {exc.title}: {describe_validation(exc.errors())}"


#: errno values that mean the user named a wrong path (exit 2); other OS errors are the disk's
_PATH_ERRNOS = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP}
)


def error_line(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit code for *exc*, or None for a bug (shown as a traceback).

    Exit codes: 2 bad input (values, files, paths), 3 hardware, 4 disk (full, read-only, no
    permission, I/O error). This is the one place where exceptions become what a user reads.
    """
    if isinstance(exc, DeepscopeError):
        return str(exc), exc.exit_code
    if isinstance(exc, ValidationError):
        return _one_line(exc), 2
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "expected UTF-8 YAML/JSON",
            2,
        )
    if isinstance(exc, MemoryError):
        return "not enough memory for this input; give a smaller input or a smaller tile", 2
    if isinstance(exc, OSError):
        where = f"{exc.filename}" if exc.filename else "a file"
        what = (exc.strerror or str(exc) or type(exc).__name__).lower()
        if is_disk_full(exc):
            return f"disk full writing {where} ({what}); earlier output is intact", 4
        if exc.errno in (errno.EEXIST, errno.ENOTDIR):
            return f"{where}: a file is in the way ({what}); expected a directory", 2
        if exc.errno in _PATH_ERRNOS:
            return f"{where}: {what}", 2
        return f"cannot write or read {where}: {what}", 4
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(getattr(args, "verbose", 0) + 1, 2)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("deepscope: interrupted; completed output is kept, rerun to resume", file=sys.stderr)
        return 130
    except Exception as exc:
        found = error_line(exc)
        if found is None:
            raise
        message, code = found
        log.debug("error details", exc_info=True)
        print(f"deepscope: error: {' '.join(message.split())}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
