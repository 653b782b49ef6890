"""``deepscope export``: a trained model as ONNX, TorchScript or a bioimage.io package."""

from __future__ import annotations

import argparse
import importlib
import logging
from pathlib import Path

from pydantic import ValidationError

from deepscope.cliutil import common_options, emit_json
from deepscope.errors import InputError
from deepscope.paths import check_output_file

log = logging.getLogger("deepscope.export")

FORMATS = ("bioimageio", "onnx", "torchscript")
#: Modules each format needs (the ``export`` extra), checked before any work.
NEEDS = {
    "bioimageio": ("onnx", "onnxscript", "onnxruntime", "bioimageio.core"),
    "onnx": ("onnx", "onnxscript", "onnxruntime"),
    "torchscript": (),
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``export`` to the ``deepscope`` parser."""
    p = sub.add_parser(
        "export",
        parents=[common_options()],
        help="export a trained model as ONNX, TorchScript or a bioimage.io package",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Export a model directory for other tools. Every graph takes (n, c, y, x) float32 of\n"
            "any batch size, height and width, and is checked against torch before it is kept\n"
            "(largest difference at most 1e-3 of the input range); nothing is written otherwise.\n"
            "\n"
            "Normalisation: the onnx and torchscript files have the model's normalisation baked\n"
            "in (raw intensities in, raw intensities out), since they travel without\n"
            "config.json. The bioimageio package (format 0.5, a zip) holds the bare network on\n"
            "normalised intensities (pytorch_state_dict with the architecture from deepscope,\n"
            "torchscript and onnx weights) and states the normalisation as its preprocessing\n"
            "(fixed_zero_mean_unit_variance, mean = input_offset, std = input_scale) and\n"
            "postprocessing (scale_linear, gain = target_scale, offset = target_offset), which\n"
            "bioimage.io tools apply; its test tensors are raw intensities, and it passes\n"
            "bioimageio.core's test before it is written. The package's pytorch_state_dict is a\n"
            "torch.save file for the ecosystem; deepscope itself loads only safetensors."
        ),
    )
    p.add_argument("model_dir", type=Path, metavar="MODEL", help="trained model directory")
    p.add_argument(
        "--format",
        required=True,
        metavar="FORMAT",
        help="bioimageio (a .zip package), onnx or torchscript",
    )
    p.add_argument(
        "-o", "--out", type=Path, required=True, help="new file to write (never replaced)"
    )
    p.add_argument("--name", help="bioimageio: model name (default: 'deepscope MODEL')")
    p.add_argument(
        "--author", action="append", default=[], help="bioimageio: an author (repeatable)"
    )
    p.add_argument("--license", help="bioimageio: SPDX license id of the weights, e.g. CC-BY-4.0")
    p.set_defaults(func=run_export)


def _need(module: str) -> None:
    """Raise :class:`InputError` naming the ``export`` extra when *module* cannot be imported."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise InputError(
            f"exporting needs {module}, which is not installed: pip install 'deepscope[export]'"
        ) from exc


def default_name(model_dir: Path) -> str:
    """``deepscope <directory name>`` with characters bioimage.io refuses replaced by ``-``."""
    from model.export.bmz import NAME_CHARACTERS

    stem = "".join(ch if ch in NAME_CHARACTERS else "-" for ch in model_dir.resolve().name)
    return f"deepscope {stem}"[:128]


def _check_package_fields(args: argparse.Namespace) -> str:
    """The package name; one-line errors for a bad name or licence, before any work."""
    from bioimageio.spec.model import v0_5

    from model.export.bmz import NAME_CHARACTERS

    name = args.name if args.name is not None else default_name(args.model_dir)
    bad = sorted(set(name) - NAME_CHARACTERS)
    if bad or not 5 <= len(name) <= 128:
        raise InputError(
            f"--name {name!r} is not a bioimage.io model name: use 5 to 128 letters, digits, "
            "spaces and _+-()"
        )
    if args.license is not None:
        try:
            v0_5.LicenseId(args.license)
        except ValidationError as exc:
            raise InputError(
                f"--license {args.license!r} is not an SPDX license id; e.g. MIT, CC-BY-4.0, "
                "BSD-3-Clause"
            ) from exc
    for author in args.author:
        if "/" in author or not author.strip():
            raise InputError(f"--author {author!r} must be a name without '/'")
    return name


def run_export(args: argparse.Namespace) -> int:
    """Handle ``deepscope export``."""
    fmt = args.format
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r} is unknown; expected one of: {', '.join(FORMATS)}")
    out: Path = args.out
    if out.exists() or out.is_symlink():
        raise InputError(f"--out {out} exists; export never replaces a file, choose a new path")
    check_output_file(out)

    for module in NEEDS[fmt]:
        _need(module)
    name = _check_package_fields(args) if fmt == "bioimageio" else ""

    from model.export import graphs
    from model.store import load_model

    net, config = load_model(args.model_dir)
    if fmt == "bioimageio":
        from model.export.bmz import write_package

        summary = write_package(
            args.model_dir,
            net,
            config,
            out,
            name=name,
            authors=args.author,
            license=args.license,
        )
    else:
        summary = graphs.export_graph(net, config, fmt, out)
    diffs = ", ".join(f"{k} {v:.2g}" for k, v in summary["max_difference"].items())
    log.info(
        "wrote %s (%s, %d bytes); largest difference from torch: %s of the input range",
        out,
        fmt,
        summary["bytes"],
        diffs,
    )
    if args.json:
        emit_json({"format": fmt, "out": str(out), "tolerance": graphs.TOLERANCE, **summary})
    return 0
