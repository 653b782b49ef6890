"""``deepscope simulate snap``: one frame from the simulated microscope, as an OME-TIFF."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from deepscope.cli import common_options, emit_json

log = logging.getLogger("deepscope.simulators")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to the ``deepscope`` parser."""
    sim = sub.add_parser(
        "simulate",
        help="the simulated microscope",
        description="Use the simulated microscope (pymmcore-plus devices over a virtual slide).",
    )
    ssub = sim.add_subparsers(dest="simulate_command", metavar="ACTION", required=True)
    p = ssub.add_parser(
        "snap",
        parents=[common_options()],
        help="take one frame and write it as OME-TIFF",
        description=(
            "Move the simulated stage, swing in an objective and take one 12-bit RGB frame; "
            "the OME-TIFF carries pixel size, stage position read back, objective and exposure."
        ),
    )
    p.add_argument("--objective", default="40x", help="40x or 100x (default 40x)")
    p.add_argument("--x", type=float, default=0.0, metavar="UM", help="stage x (um)")
    p.add_argument("--y", type=float, default=0.0, metavar="UM", help="stage y (um)")
    p.add_argument("--z", type=float, default=0.0, metavar="UM", help="focus z (um)")
    p.add_argument("--exposure-ms", type=float, default=10.0, help="exposure (ms, default 10)")
    p.add_argument(
        "--roi", type=int, nargs=4, metavar=("X", "Y", "W", "H"), help="camera ROI in pixels"
    )
    p.add_argument("--seed", type=int, default=0, help="slide and imperfection seed (default 0)")
    p.add_argument(
        "--specimen", choices=("tissue", "usaf"), default="tissue", help="slide (default tissue)"
    )
    p.add_argument("-o", "--output", required=True, type=Path, help="output .ome.tif")
    p.set_defaults(func=_snap)


def _snap(args: argparse.Namespace) -> int:
    from deepscope.errors import InputError
    from deepscope.ometiff import ImageMeta, PlaneMeta, write_ome_tiff
    from deepscope.paths import check_output_file
    from simulators import OBJECTIVES, make_core

    if args.objective not in OBJECTIVES:
        raise InputError(
            f"objective {args.objective!r} is unknown; expected one of: {', '.join(OBJECTIVES)}"
        )
    if not str(args.output).endswith((".ome.tif", ".ome.tiff")):
        raise InputError(f"output {args.output} must end in .ome.tif or .ome.tiff")
    check_output_file(args.output)
    core = make_core(seed=args.seed, specimen=args.specimen, objective=args.objective)
    core.setExposure(args.exposure_ms)
    if args.roi:
        core.setROI(*args.roi)
    core.setXYPosition(args.x, args.y)
    core.setPosition(args.z)
    core.snapImage()
    image = core.getImage()
    x, y = core.getXYPosition()
    z = core.getPosition()
    spec = OBJECTIVES[args.objective]
    meta = ImageMeta(
        pixel_size_um=core.getPixelSizeUm(),
        planes=(PlaneMeta(x_um=x, y_um=y, z_um=z, exposure_ms=core.getExposure()),),
        objective=spec.name,
        magnification=spec.magnification,
        na=spec.na,
        immersion=spec.immersion,
        channel_names=("R", "G", "B"),
        name=args.output.name.split(".")[0],
        annotations={"simulator_seed": str(args.seed), "specimen": args.specimen},
    )
    path = write_ome_tiff(args.output, image, meta)
    log.info(
        "wrote %s (%dx%d, %.4f um/px)", path, image.shape[1], image.shape[0], meta.pixel_size_um
    )
    if args.json:
        emit_json(
            {
                "path": str(path),
                "shape": list(image.shape),
                "dtype": str(image.dtype),
                "objective": spec.name,
                "pixel_size_um": meta.pixel_size_um,
                "x_um": x,
                "y_um": y,
                "z_um": z,
                "exposure_ms": core.getExposure(),
                "mean_counts": [float(v) for v in image.reshape(-1, 3).mean(axis=0)],
            }
        )
    return 0
