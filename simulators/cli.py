"""``deepscope simulate snap`` (one frame as an OME-TIFF) and ``simulate config`` (a .cfg)."""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from pathlib import Path

from acquire.backends import add_roi_option
from deepscope.cliutil import common_options, emit_json

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
    add_roi_option(p)
    p.add_argument("--seed", type=int, default=0, help="slide and imperfection seed (default 0)")
    p.add_argument(
        "--specimen", choices=("tissue", "usaf"), default="tissue", help="slide (default tissue)"
    )
    p.add_argument(
        "-o", "--out", "--output", dest="out", required=True, type=Path, help="output .ome.tif"
    )
    p.set_defaults(func=_snap)

    c = ssub.add_parser(
        "config",
        parents=[common_options()],
        help="write the simulator as a Micro-Manager configuration file",
        description=(
            "Write the simulated microscope as a Micro-Manager hardware configuration (Python "
            "devices, '#py' lines that pymmcore-plus UniMMCore loads): '--mm-config FILE' on any "
            "command then runs exactly what '--simulate' runs. Settings are properties of the "
            "'Scope' hub (seed, specimen, imperfections, sensor, faults) and can be edited."
        ),
    )
    c.add_argument("--seed", type=int, default=0, help="slide and imperfection seed (default 0)")
    c.add_argument(
        "--specimen", choices=("tissue", "usaf"), default="tissue", help="slide (default tissue)"
    )
    c.add_argument("--no-imperfections", action="store_true", help="ideal objectives and stages")
    c.add_argument(
        "--sensor", type=int, nargs=2, metavar=("W", "H"), default=(2048, 2048), help="camera px"
    )
    c.add_argument("-o", "--out", required=True, type=Path, help="output .cfg")
    c.set_defaults(func=_config)


def _config(args: argparse.Namespace) -> int:
    from deepscope.atomic import atomic_write_text
    from deepscope.mmcore import load_config
    from simulators.core import simulator_config

    text = simulator_config(
        seed=args.seed,
        specimen=args.specimen,
        imperfections=not args.no_imperfections,
        sensor=(args.sensor[1], args.sensor[0]),
    )
    load_config(text=text).unloadAllDevices()  # what is written loads
    atomic_write_text(args.out, text)
    log.info("wrote %s", args.out)
    if args.json:
        emit_json({"path": str(args.out), "seed": args.seed, "specimen": args.specimen})
    return 0


def _snap(args: argparse.Namespace) -> int:
    from acquire.backends import roi_from_option, set_camera_roi
    from deepscope.errors import InputError
    from deepscope.ometiff import ImageMeta, PlaneMeta, write_ome_tiff
    from deepscope.paths import check_output_file
    from simulators import OBJECTIVES, make_core

    if args.objective not in OBJECTIVES:
        raise InputError(
            f"objective {args.objective!r} is unknown; expected one of: {', '.join(OBJECTIVES)}"
        )
    if not str(args.out).endswith((".ome.tif", ".ome.tiff")):
        raise InputError(f"output {args.out} must end in .ome.tif or .ome.tiff")
    check_output_file(args.out)
    roi = roi_from_option(args.roi)
    core = make_core(seed=args.seed, specimen=args.specimen, objective=args.objective)
    core.setExposure(args.exposure_ms)
    set_camera_roi(core, roi)
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
        acquired_at=datetime.now(UTC),
        significant_bits=core.getImageBitDepth(),
        name=args.out.name.split(".")[0],
        annotations={"simulator_seed": str(args.seed), "specimen": args.specimen},
    )
    path = write_ome_tiff(args.out, image, meta)
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
