"""``deepscope gui``: the interactive window on a simulated or real microscope."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepscope.cli import common_options


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to the ``deepscope`` parser."""
    p = sub.add_parser(
        "gui",
        parents=[common_options()],
        help="open the live/acquisition/training window",
        description=(
            "Open the deepscope window: live 40x preview with the enhanced frame beside it, "
            "paired acquisition, registration and training."
        ),
    )
    p.add_argument("--simulate", action="store_true", help="use the simulated microscope")
    p.add_argument("--mm-config", type=Path, help="Micro-Manager hardware configuration file")
    p.add_argument("--model", type=Path, help="model directory to enhance live frames with")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated slide")
    p.add_argument(
        "--roi",
        type=int,
        nargs=4,
        metavar=("X", "Y", "W", "H"),
        help="camera ROI in pixels (e.g. 768 768 512 512: a model on a CPU keeps up better)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from gui.app import run_app

    return run_app(
        simulate=args.simulate,
        mm_config=args.mm_config,
        model_dir=args.model,
        seed=args.seed,
        roi=tuple(args.roi) if args.roi else None,
    )
