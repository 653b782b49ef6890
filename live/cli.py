"""``deepscope live``: enhance every new camera frame; headless statistics or a console view."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from acquire.backends import add_roi_option, add_scope_options
from deepscope.cliutil import common_options, emit_json
from deepscope.errors import HardwareError, InputError
from deepscope.locking import directory_lock

if TYPE_CHECKING:
    from acquire.plan import CameraROI

log = logging.getLogger("deepscope.live")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``live`` to the ``deepscope`` parser."""
    p = sub.add_parser(
        "live",
        parents=[common_options()],
        help="enhance every new 40x camera frame as it arrives",
        description=(
            "Run the camera's continuous sequence acquisition (Micro-Manager live mode) and "
            "enhance the newest frame with MODEL_DIR; frames the network cannot keep up with "
            "are skipped for display (and counted), recorded frames are all saved. Uses the "
            "simulated microscope unless --mm-config is given. Without --headless it prints "
            "statistics each second until Ctrl-C or --frames; for a window use "
            "'deepscope gui --model MODEL_DIR'."
        ),
    )
    p.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="trained model directory")
    add_scope_options(p)
    add_roi_option(p)
    p.add_argument("--headless", action="store_true", help="no display; print statistics")
    p.add_argument(
        "--frames", type=int, default=None, help="stop after N camera frames (headless default 50)"
    )
    p.add_argument(
        "--record",
        type=Path,
        default=None,
        metavar="DIR",
        help="save raw frames into DIR (new, or without a recording; locked while recording)",
    )
    p.add_argument(
        "--save-enhanced", action="store_true", help="also save enhanced frames (with --record)"
    )
    p.add_argument("--self-feed", action="store_true", help="self-feeding enhancement")
    p.add_argument("--exposure-ms", type=float, default=None, help="camera exposure (ms)")
    p.add_argument(
        "--stop-timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="how long stopping waits for the frame being enhanced (default: %(default)s s)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    p.add_argument(
        "--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"], help="precision"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--force",
        action="store_true",
        help="enhance even when the camera's pixel size differs from the model's (> 2 %%)",
    )
    p.add_argument("--cuda-graphs", action="store_true", help="replay CUDA graphs per frame")
    p.set_defaults(func=run_live)


def run_live(args: argparse.Namespace) -> int:
    """Handle ``deepscope live``."""
    from acquire.backends import roi_from_option
    from live.recorder import MANIFEST

    frames = args.frames if args.frames is not None else (50 if args.headless else None)
    if frames is not None and frames < 1:
        raise InputError(f"--frames {frames} must be at least 1")
    if args.exposure_ms is not None and not 0 < args.exposure_ms <= 10_000:
        raise InputError(f"--exposure-ms {args.exposure_ms} must be in (0, 10000]")
    if args.stop_timeout <= 0:
        raise InputError(f"--stop-timeout {args.stop_timeout} must be positive")
    roi = roi_from_option(args.roi)
    with contextlib.ExitStack() as held:
        if args.record is not None:  # one recorder per directory, before the camera starts
            held.enter_context(directory_lock(args.record))
            if (args.record / MANIFEST).exists():
                raise InputError(
                    f"{args.record} already holds a recording ({MANIFEST}); choose a new "
                    "--record directory"
                )
        return _run(args, frames, roi)


def _run(args: argparse.Namespace, frames: int | None, roi: CameraROI | None) -> int:
    """Load the model, open the microscope and run the pipeline (the record lock is held)."""
    from acquire.backends import ScopeChoice, open_core, set_camera_roi
    from live.pipeline import LivePipeline
    from model.inference.engine import Enhancer

    enhancer = Enhancer.from_dir(
        args.model_dir,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
        cuda_graphs=args.cuda_graphs,
    )
    core = open_core(ScopeChoice.from_args(args))
    set_camera_roi(core, roi)
    if args.exposure_ms is not None:
        core.setExposure(args.exposure_ms)
    reason = enhancer.pixel_size_mismatch(core.getPixelSizeUm())
    if reason is not None and not args.force:
        raise InputError(f"{reason}; pass --force to enhance anyway")
    pipeline = LivePipeline(
        core,
        enhancer,
        record_dir=args.record,
        save_enhanced=args.save_enhanced,
        self_feed=args.self_feed,
        full_output=False,
        check_pixel_size=not args.force,
    )
    pipeline.start()
    last_report = time.perf_counter()
    try:
        while pipeline.running and (frames is None or pipeline.stats().frames_in < frames):
            time.sleep(0.01)
            if not args.headless and time.perf_counter() - last_report >= 1.0:
                last_report = time.perf_counter()
                s = pipeline.stats()
                print(
                    f"frames {s.frames_in}  enhanced {s.frames_enhanced}  dropped {s.dropped}  "
                    f"camera {s.camera_fps or 0:.1f} fps  model {s.inference_fps or 0:.1f} fps  "
                    f"p50 {s.latency_p50_ms or 0:.0f} ms",
                    file=sys.stderr,
                )
    finally:
        # a frame already in the network is finished, not abandoned: a thread left running
        # inside torch at exit aborts the process
        stats = pipeline.stop(timeout=args.stop_timeout)
    if stats.frames_in == 0:
        raise HardwareError("the camera delivered no frames")
    summary = {**stats.as_dict(), **enhancer.describe()}
    if args.json:
        emit_json(summary)
    else:
        log.info("live: %s", summary)
    return 0
