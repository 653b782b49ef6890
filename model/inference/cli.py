"""``deepscope enhance``: enhance OME-TIFF images with a trained model."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from deepscope.atomic import remove_stale_partials
from deepscope.cliutil import common_options, emit_json
from deepscope.errors import InputError
from deepscope.paths import check_new_outputs

if TYPE_CHECKING:
    from deepscope.ometiff import ImageMeta
    from model.inference.engine import Enhancer

log = logging.getLogger("deepscope.inference")

ENHANCED_SUFFIX = "_enhanced.ome.tif"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``enhance`` to the ``deepscope`` parser."""
    p = sub.add_parser(
        "enhance",
        parents=[common_options()],
        help="enhance 40x OME-TIFF images with a trained model (tiled, any size)",
        description=(
            "Enhance each input OME-TIFF (every z-plane) and write an OME-TIFF whose pixel size "
            "is divided by the model's scale. Large images and mosaics are tiled and blended "
            "without seams."
        ),
    )
    p.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="trained model directory")
    p.add_argument("inputs", type=Path, nargs="+", metavar="IN", help="input OME-TIFF files")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        help="output directory (or an .ome.tif file when there is one input)",
    )
    p.add_argument("--tile", type=int, default=None, help="tile edge in input pixels")
    p.add_argument("--overlap", type=int, default=None, help="tile overlap in input pixels")
    p.add_argument(
        "--self-feed", action="store_true", help="feed the output through the network again"
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="compute precision (default: bf16/fp16 on CUDA, fp32 on CPU)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="enhance inputs whose pixel size differs from the model's input pixel size",
    )
    p.set_defaults(func=run_enhance)


def output_paths(inputs: list[Path], out: Path) -> list[Path]:
    """Where each input's enhanced image goes: ``OUT`` itself for one ``.tif`` target."""
    if len(inputs) == 1 and out.suffix.lower() in (".tif", ".tiff"):
        return [out]
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out} is an existing file; expected a directory for the outputs")
    stems = [p.name.split(".")[0] for p in inputs]
    if len(set(stems)) != len(stems):
        raise InputError("input files share a name; give inputs with distinct names")
    return [out / f"{s}{ENHANCED_SUFFIX}" for s in stems]


def enhanced_meta(
    meta: ImageMeta, enhancer: Enhancer, self_feed: bool, model_dir: Path
) -> ImageMeta:
    """Metadata of an enhanced image: pixel size divided by the scale, provenance noted.

    The source objective goes into the annotations, not the OME Objective: no physical 40x
    objective took an image at the enhanced pixel size.
    """
    notes = {
        **meta.annotations,
        "enhanced_by": "deepscope",
        "enhance_model": model_dir.resolve().name,
        "enhance_scale": str(enhancer.scale),
        "enhance_self_feed": str(self_feed).lower(),
        "enhance_precision": enhancer.precision,
        "source_pixel_size_um": f"{meta.pixel_size_um:.12g}",
    }
    if meta.objective:
        notes["source_objective"] = meta.objective
    return meta.model_copy(
        update={
            "pixel_size_um": meta.pixel_size_um / enhancer.scale,
            "annotations": notes,
            "objective": None,
            "magnification": None,
            "na": None,
            "immersion": None,
            "name": f"{meta.name or 'image'} enhanced",
        }
    )


def run_enhance(args: argparse.Namespace) -> int:
    """Handle ``deepscope enhance``."""
    import numpy as np
    from tqdm import tqdm

    from deepscope.imaging import to_raw_dtype
    from deepscope.ometiff import read_ome_tiff, write_ome_tiff
    from model.inference.engine import Enhancer

    for p in args.inputs:
        if not p.is_file():
            raise InputError(f"input {p} does not exist; give OME-TIFF files")
    targets = output_paths(args.inputs, args.out)
    check_new_outputs(targets, args.inputs)
    for parent in {t.parent for t in targets if t.parent.is_dir()}:
        remove_stale_partials(parent, recursive=False)  # left by a killed earlier run
    enhancer = Enhancer.from_dir(
        args.model_dir,
        device=args.device,
        precision=args.precision,
        tile=args.tile,
        overlap=args.overlap,
    )
    if not args.force:  # every input is checked before anything is written
        for src in args.inputs:
            reason = enhancer.pixel_size_mismatch(read_ome_tiff(src)[1].pixel_size_um)
            if reason is not None:
                raise InputError(f"{src}: {reason}; pass --force to enhance it anyway")
    log.info("enhancing %d file(s) with %s", len(targets), enhancer.describe())
    written = []
    start = time.perf_counter()
    for src, dst in tqdm(list(zip(args.inputs, targets, strict=True)), desc="enhance", unit="file"):
        stack, meta = read_ome_tiff(src)
        planes = [enhancer.enhance(plane, self_feed=args.self_feed) for plane in stack]
        out = to_raw_dtype(np.stack(planes), stack.dtype)
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_ome_tiff(dst, out, enhanced_meta(meta, enhancer, args.self_feed, args.model_dir))
        written.append({"input": str(src), "output": str(dst), "shape": list(out.shape)})
    if args.json:
        emit_json(
            {
                "files": written,
                "seconds": round(time.perf_counter() - start, 3),
                **enhancer.describe(),
            }
        )
    return 0
