"""``deepscope gui``: the interactive window on a simulated or real microscope."""

from __future__ import annotations

import argparse
from pathlib import Path

from acquire.backends import add_roi_option, add_scope_options
from deepscope.cliutil import common_options


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to the ``deepscope`` parser."""
    p = sub.add_parser(
        "gui",
        parents=[common_options()],
        help="open the live/acquisition/training window",
        description=(
            "Open the deepscope window: live 40x preview with the enhanced frame beside it, "
            "paired acquisition, registration and training. Uses the simulated microscope "
            "unless --mm-config or --zmq-port is given."
        ),
    )
    add_scope_options(p)
    p.add_argument("--model", type=Path, help="model directory to enhance live frames with")
    add_roi_option(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from acquire.backends import ScopeChoice, roi_from_option
    from gui.app import run_app

    roi = roi_from_option(args.roi)
    return run_app(ScopeChoice.from_args(args), model_dir=args.model, roi=roi)
