"""The ``deepscope`` command: one entry point, one subcommand per stage of the pipeline.

Each area registers its own subcommands (``register(subparsers)`` in its ``cli`` module) and
imports heavy dependencies (torch, Qt) only inside the handler, so ``deepscope --help`` is fast.
Errors a user can fix are :class:`~deepscope.errors.DeepscopeError` and print as one line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from deepscope import __version__
from deepscope.errors import DeepscopeError

log = logging.getLogger("deepscope")

#: Modules that add subcommands, in the order they appear in ``--help``.
COMMAND_MODULES = (
    "simulators.cli",  # simulate
    "acquire.cli",  # calibrate, acquire
    "model.registration.cli",  # register
    "model.training.cli",  # train, evaluate
    "model.inference.cli",  # enhance
    "acquire.live.cli",  # live
    "gui.cli",  # gui
    "deepscope.demo",  # demo
    "deepscope.info",  # info
)


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand takes: ``--json`` and ``-v``; pass as ``parents=[...]``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output on stderr (-vv: debug)"
    )
    return p


def emit_json(summary: Any) -> None:
    """Print *summary* as one JSON document on stdout (logs and progress go to stderr)."""
    sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    sys.stdout.flush()


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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    return f"invalid {exc.title}: " + "; ".join(parts)


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
    except DeepscopeError as exc:
        print(f"deepscope: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ValidationError as exc:
        print(f"deepscope: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepscope: interrupted; completed output is kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
