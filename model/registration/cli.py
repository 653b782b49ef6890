"""``deepscope register``: 40x/100x dataset (or a folder of OME-TIFFs) -> registered pairs."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepscope.cliutil import common_options, emit_json
from deepscope.paths import check_outside_data


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to the ``deepscope`` parser."""
    p = sub.add_parser(
        "register",
        parents=[common_options()],
        help="align 100x fields to the stitched 40x tiles and write training pairs",
        description=(
            "Stitch the 40x tiles, locate every 100x field (NCC), refine it to a sub-pixel "
            "similarity (ECC), crop matching 40x/100x pairs and write pairs.json, the pair "
            "OME-TIFFs and a QC report (qc.json, qc.md, qc_overview.png). DATASET is a "
            "'deepscope acquire' directory or a folder of OME-TIFFs with pixel sizes and "
            "stage positions from two objectives (the lower magnification are the tiles)."
        ),
    )
    p.add_argument("dataset", type=Path, metavar="DATASET", help="dataset or OME-TIFF folder")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="PAIRS", help="pairs directory")
    p.add_argument(
        "--edof",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fuse the 100x z-stack by wavelet EDOF (default) or take the best-focus slice",
    )
    p.add_argument(
        "--flat-field",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="correct each objective with the dataset's blank frames, where it has them (default)",
    )
    p.add_argument(
        "--match-intensity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bring each 100x target to its 40x crop's intensities by a per-channel gain and "
        "offset, recorded in pairs.json (default)",
    )
    p.add_argument("--min-ncc", type=float, default=0.5, help="lowest accepted NCC (0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val/test split")
    p.add_argument(
        "--split",
        type=float,
        nargs=3,
        default=(0.7, 0.15, 0.15),
        metavar=("TRAIN", "VAL", "TEST"),
        help="split fractions by field (0.7 0.15 0.15)",
    )
    p.add_argument(
        "--search-radius-um", type=float, default=25.0, help="search window around the prior"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from model.registration.pipeline import RegistrationOptions, register_dataset

    check_outside_data(args.out, ("dataset.json", "manifest.jsonl"))  # never into raw data
    options = RegistrationOptions(
        edof=args.edof,
        flat_field=args.flat_field,
        match_intensity=args.match_intensity,
        min_ncc=args.min_ncc,
        seed=args.seed,
        split=tuple(args.split),
        search_radius_um=args.search_radius_um,
    )
    summary = register_dataset(args.dataset, args.out, options)
    if args.json:
        emit_json(summary.model_dump(mode="json"))
    else:
        print(
            f"{summary.accepted} of {summary.fields} fields registered "
            f"({summary.rejected} rejected) -> {summary.out_dir}"
        )
    return 0 if summary.accepted > 0 else 1
