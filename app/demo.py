"""``deepscope demo``: the whole mission on the simulated microscope, resumable.

Stages, each a directory under ``--out`` (default ``demo-output/``)::

    profile.yaml   microscope profile with the measured 100x-vs-40x offsets   -> calibrate
    plan.yaml      the paired-acquisition plan the demo runs
    dataset/       paired acquisition (40x tiles, then 100x z-stacks)      -> acquire
    pairs/         registered pairs with the QC report                     -> register
    model/         trained network (safetensors + config.json, curves)     -> train
    evaluation/    bicubic vs network vs self-fed table and figure         -> evaluate
    live/          live enhanced preview: side-by-side PNG + latency JSON  -> live

A rerun continues where the last one stopped: finished acquisition fields, pairs and training
steps are kept, and a finished stage is not redone.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acquire.backends import add_roi_option
from deepscope.atomic import atomic_write_json
from deepscope.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from acquire.plan import AcquisitionPlan
    from model.training.metrics import Interval
    from simulators.truth import PairTruth

log = logging.getLogger("deepscope.demo")

#: The demo's acquisition: 40x tiles, 100x z-stacks inside, two exposures averaged per 100x
#: plane, blank frames of bare glass per objective for the flat field, every field focused by a
#: z scan. :func:`demo_plan` adds the region size, camera ROI, field count and flat-field spot.
DEMO_PLAN: dict[str, Any] = {
    "name": "demo",
    "region": {"x_um": 0.0, "y_um": 0.0},
    "tiles": {"objective": "40x", "overlap": 0.15, "exposure_ms": 10},
    "targets": {
        "objective": "100x",
        "seed": 1,
        "margin_um": 2.0,
        "exposure_ms": 10,
        "averages": 2,
        "z": {"slices": 5, "step_um": 0.4},
    },
    "flat_field": {"frames": 8},
    "autofocus": {"mode": "per_field", "range_um": 4.0, "step_um": 0.5},
    "serpentine": True,
    "retries": 2,
    "on_failure": "continue",
}
#: Log of the simulator's true pose of every frame (for the noise-free truth), beside dataset/.
SNAPS_NAME = "simulator_snaps.jsonl"
#: Train / validation / test fractions of the demo's fields (22 accepted of 24 give 9 test fields).
DEMO_SPLIT = (0.45, 0.15, 0.4)


@dataclass
class DemoResult:
    """Where every output of the demo is, and the key figures."""

    out_dir: Path
    outputs: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for ``--json``."""
        return {
            "out_dir": str(self.out_dir),
            "outputs": self.outputs,
            "figures": self.figures,
            "stage_seconds": self.stage_seconds,
        }


@contextmanager
def _stage(result: DemoResult, name: str, title: str) -> Iterator[None]:
    from tqdm import tqdm

    tqdm.write(f"== {title}", file=sys.stderr)  # progress, like the bars (not a warning)
    t0 = time.perf_counter()
    yield
    result.stage_seconds[name] = round(time.perf_counter() - t0, 1)


def _bar(desc: str, unit: str) -> Any:
    from tqdm import tqdm

    return tqdm(desc=desc, unit=unit, leave=True, dynamic_ncols=True)


def glass_spot(seed: int, size_um: float, start_um: tuple[float, float]) -> tuple[float, float]:
    """Centre of a *size_um* square of bare glass on the simulated slide, near *start_um*."""
    from simulators.specimen import TissueSpecimen

    specimen = TissueSpecimen(seed)
    x0, y0 = start_um
    for ring in range(40):
        r = ring * size_um
        for k in range(max(1, 8 * ring)):
            angle = 2 * math.pi * k / max(1, 8 * ring)
            x, y = x0 + r * math.cos(angle), y0 + r * math.sin(angle)
            if specimen.tissue_fraction(x, y, 1.5 * size_um, 1.5 * size_um) == 0.0:
                return round(x, 1), round(y, 1)
    raise RuntimeError(f"no bare glass near {start_um} on slide seed {seed}")


def demo_plan(fields: int, roi: int, seed: int = 0, tiles: int = 3) -> AcquisitionPlan:
    """The demo's plan: *fields* 100x fields in *tiles* x *tiles* 40x tiles of a square ROI.

    The tiles' field of view is the ROI times the simulated camera's pixel size at the tile
    objective.
    """
    from acquire.plan import AcquisitionPlan
    from simulators import nominal_pixel_size_um

    raw = json.loads(json.dumps(DEMO_PLAN))
    raw["targets"]["count"] = fields
    raw["camera_roi"] = {"width": roi, "height": roi}
    tile = raw["tiles"]
    fov_um = roi * nominal_pixel_size_um(tile["objective"])
    # a region that the tiles cover with their overlap (2 % inside, for stage errors)
    side = round(0.98 * (1 + (tiles - 1) * (1 - tile["overlap"])) * fov_um, 1)
    raw["region"].update(width_um=side, height_um=side)
    gx, gy = glass_spot(seed, fov_um, (0.0, -2 * side))
    raw["flat_field"].update(x_um=gx, y_um=gy)
    return AcquisitionPlan.from_dict(raw, source="demo plan")


def calibrate_stage(out: Path, seed: int) -> dict[str, Any]:
    """Measure the 100x objective's xy/z offset from the 40x into ``out/profile.yaml``.

    As on a real scope this uses a thin calibration slide (the simulated USAF-1951 target of
    the same microscope): on a 4.5 um thick section the two objectives focus on different
    layers, which biases the parfocal offset.
    """
    from acquire.backends import python_scope
    from acquire.calibrate import calibrate, calibrated_profile
    from acquire.plan import CameraROI
    from acquire.profile import MicroscopeProfile
    from simulators import make_core

    path = out / "profile.yaml"
    if path.exists():
        cal = MicroscopeProfile.from_file(path).calibration
        return {"resumed": True, **cal.model_dump()}
    profile = MicroscopeProfile()
    with python_scope(make_core(seed=seed, specimen="usaf")) as scope:
        result = calibrate(scope, profile, x_um=0.0, y_um=0.0, roi=CameraROI(width=256, height=256))
    calibrated_profile(profile, result, "40x", "100x").to_file(path)
    return {**result.calibration.model_dump(), "match_score": round(result.match_score, 3)}


def acquire_stage(out: Path, plan: AcquisitionPlan, seed: int) -> dict[str, Any]:
    """Run (or resume) the paired acquisition into ``out/dataset``."""
    from acquire.profile import MicroscopeProfile
    from acquire.runner import AcquisitionProgress, run_acquisition
    from simulators import make_core
    from simulators.truth import record_snaps

    dataset = out / "dataset"
    resume = (dataset / "dataset.json").exists()
    core = make_core(seed=seed)
    # where every frame really was, for the noise-free truth in the evaluation (outside the
    # dataset, which stays as a real microscope would write it)
    record_snaps(core, out / SNAPS_NAME)
    bar = _bar("acquire", "field")

    def progress(p: AcquisitionProgress) -> None:
        bar.total = p.total
        bar.n = p.finished
        bar.set_postfix_str(f"{p.phase} {p.field_id or ''} failed={p.failed}")

    try:
        summary = run_acquisition(
            plan,
            dataset,
            core,
            profile=MicroscopeProfile.from_file(out / "profile.yaml"),
            resume=resume,
            progress=progress,
        )
    finally:
        bar.close()
    return summary.to_dict()


def register_stage(
    out: Path, seed: int, split: tuple[float, float, float] = DEMO_SPLIT
) -> dict[str, Any]:
    """Register the dataset into ``out/pairs`` unless that is already complete."""
    from model.registration import RegistrationOptions, register_dataset

    pairs = out / "pairs"
    done_marker = pairs / "qc.json"
    if done_marker.exists() and (pairs / "pairs.json").exists():
        return {"resumed": True, **json.loads(done_marker.read_text(encoding="utf-8"))}
    bar = _bar("register", "field")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        summary = register_dataset(
            out / "dataset",
            pairs,
            RegistrationOptions(seed=seed, split=split),
            progress=progress,
        )
    finally:
        bar.close()
    return summary.model_dump(mode="json")


def train_stage(out: Path, steps: int, seed: int, init: Path | None) -> dict[str, Any]:
    """Fine-tune *init* (or train from scratch) into ``out/model``; best validation scores."""
    from model.training import train_model
    from model.training.config import TrainConfig, ValMetrics

    config = TrainConfig(steps=steps, seed=seed, val_every=max(1, steps // 6))
    bar = _bar("train", "step")
    bar.total = steps

    def progress(m: ValMetrics) -> None:
        bar.n = m.step
        bar.set_postfix_str(f"loss={m.train_loss:.4g} val_psnr={m.val_psnr:.2f}")

    try:
        result = train_model(out / "pairs", out / "model", config, init=init, progress=progress)
    finally:
        bar.close()
    return {
        "init": str(init) if init is not None else None,
        "steps": result.steps,
        "best_step": result.best_step,
        "val_ssim": round(result.best_val_ssim, 4),
        "val_psnr": round(result.best_val_psnr, 2),
        "bicubic_val_ssim": round(result.bicubic_val_ssim, 4),
        "bicubic_val_psnr": round(result.bicubic_val_psnr, 2),
        "beats_bicubic": result.beats_bicubic,
        "steps_per_second": round(result.steps_per_second, 2),
    }


def demo_truth(out: Path, seed: int = 0) -> PairTruth | None:
    """The noise-free truth of the pairs of demo output *out* (*seed*: its slide's seed).

    ``None`` when the demo logged no simulator snaps.
    """
    from simulators.truth import PairTruth

    snaps = out / SNAPS_NAME
    return PairTruth(out / "dataset", out / "pairs", snaps, seed) if snaps.is_file() else None


def evaluate_stage(out: Path, seed: int, init: Path | None) -> dict[str, Any]:
    """Score bicubic, the classical baselines and the network on the test fields.

    Against the 100x targets and, for fields whose snaps were logged, the noise-free truth. The
    model fine-tuning started from (*init*) is scored too, into ``evaluation/init``, so that
    the summary says what the fine-tuning on the demo's own pairs added.
    """
    from model.training.evaluate import prepare_evaluation, score_model

    # truth, tuned baselines and their scores are made once for both models
    fields = prepare_evaluation(out / "pairs", truth=demo_truth(out, seed))
    report = score_model(out / "model", fields, out / "evaluation")
    figures: dict[str, Any] = {
        **{k: round(v, 4) for k, v in report.mean.items()},
        **_truth_means(report.intervals),
        "beats_baselines": report.beats_baselines,
        "shortfalls": report.shortfalls,
        "truth_fields": report.truth_fields,
    }
    if init is not None:
        start = score_model(init, fields, out / "evaluation" / "init")
        figures["init"] = {
            "model": str(init),
            **{k: round(v, 4) for k, v in start.mean.items() if k.startswith("network")},
            **{
                k: v
                for k, v in _truth_means(start.intervals).items()
                if k.startswith("truth_network")
            },
        }
    return figures


def _truth_means(intervals: dict[str, dict[str, Interval]]) -> dict[str, float]:
    """``truth_{method}_{metric}`` -> mean against the noise-free truth (empty when unknown)."""
    return {f"truth_{k}": round(v.mean, 4) for k, v in intervals.get("truth", {}).items()}


def side_by_side(raw: np.ndarray, enhanced: np.ndarray) -> np.ndarray:
    """An 8-bit RGB picture: the raw frame upsampled (nearest) beside the enhanced frame.

    Both are shown with the same levels: black 0, white the raw frame's 99.9th percentile.
    """
    import numpy as np

    white = max(float(np.percentile(raw, 99.9)), 1.0)
    h, w = enhanced.shape[:2]
    ry = np.minimum((np.arange(h) * raw.shape[0]) // h, raw.shape[0] - 1)
    rx = np.minimum((np.arange(w) * raw.shape[1]) // w, raw.shape[1] - 1)
    up = raw[ry][:, rx]
    gap = np.full((h, 8, raw.shape[2]), white, dtype=np.float32)
    both = np.concatenate([up.astype(np.float32), gap, enhanced.astype(np.float32)], axis=1)
    return np.clip(both / white * 255.0, 0, 255).astype(np.uint8)


def gui_window(out: Path, seconds: float) -> Path | None:
    """Show the live window with the trained model for *seconds*; save its screenshot.

    Runs only where a display exists (``DISPLAY`` or ``WAYLAND_DISPLAY``); returns the PNG path,
    or None without a display or when the window could not open.
    """
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return None
    png = out / "live" / "gui_live.png"
    cmd = [sys.executable, "-m", "gui.screenshot", str(png), "--model", str(out / "model")]
    proc = subprocess.run([*cmd, "--seconds", str(seconds)], check=False, timeout=300)
    if proc.returncode != 0 or not png.exists():
        log.warning(
            "the live window could not open (exit %d); headless figures only", proc.returncode
        )
        return None
    return png


def live_stage(out: Path, seconds: float, seed: int) -> dict[str, Any]:
    """Run live mode headless on the simulator; save a side-by-side PNG and the latencies."""
    from skimage.io import imsave

    from live.pipeline import LivePipeline
    from model.inference.engine import Enhancer
    from simulators import make_core

    live = out / "live"
    live.mkdir(parents=True, exist_ok=True)
    core = make_core(seed=seed)
    core.setConfig("Objective", "40x")
    core.setROI(1024 - 128, 1024 - 128, 256, 256)
    core.setXYPosition(60.0, 60.0)
    core.setExposure(10.0)
    enhancer = Enhancer.from_dir(out / "model")
    pipeline = LivePipeline(core, enhancer)
    pipeline.start()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and pipeline.running:
            time.sleep(0.1)
    finally:
        stats = pipeline.stop()
    frame = pipeline.latest()
    png = live / "live_side_by_side.png"
    if frame is not None and frame.enhanced is not None:
        imsave(png, side_by_side(frame.raw, frame.enhanced), check_contrast=False)
    figures = stats.as_dict()
    atomic_write_json(live / "live_stats.json", figures)
    return figures


Stage = Callable[[], dict[str, Any]]


def run_demo(
    out: Path,
    *,
    seed: int = 0,
    fields: int = 24,
    roi: int = 512,
    steps: int = 150,
    init: Path | None = None,
    live_seconds: float = 5.0,
    headless: bool = False,
) -> DemoResult:
    """Run every stage on the simulator, resuming what a previous run left.

    Training fine-tunes *init* (default: the reference model shipped with deepscope) for
    *steps* steps on the demo's own pairs.
    """
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out)
    plan = demo_plan(fields, roi, seed)
    plan.to_file(out / "plan.yaml")
    stages: list[tuple[str, str, Stage]] = [
        ("calibrate", "calibration of the objective offsets", lambda: calibrate_stage(out, seed)),
        (
            "acquire",
            "paired acquisition (40x tiles, 100x z-stacks)",
            lambda: acquire_stage(out, plan, seed),
        ),
        ("register", "registration and QC", lambda: register_stage(out, seed)),
        (
            "train",
            f"training (fine-tuning {init})" if init else "training from scratch",
            lambda: train_stage(out, steps, seed, init),
        ),
        ("evaluate", "evaluation on held-out fields", lambda: evaluate_stage(out, seed, init)),
        ("live", "live enhanced preview", lambda: live_stage(out, live_seconds, seed)),
    ]
    if not headless:
        stages.append(("gui", "live window", lambda: {"screenshot": gui_window(out, live_seconds)}))
    for i, (name, title, run) in enumerate(stages, 1):
        with _stage(result, name, f"{i}/{len(stages)} {title}"):
            result.figures[name] = run()
    result.outputs = {
        "profile": str(out / "profile.yaml"),
        "plan": str(out / "plan.yaml"),
        "dataset": str(out / "dataset"),
        "pairs": str(out / "pairs"),
        "qc_report": str(out / "pairs" / "qc.md"),
        "model": str(out / "model"),
        "training_curves": str(out / "model" / "curves.png"),
        "evaluation_table": str(out / "evaluation" / "evaluation.md"),
        "evaluation_figure": str(out / "evaluation" / "regions.png"),
        "live_picture": str(out / "live" / "live_side_by_side.png"),
        "live_stats": str(out / "live" / "live_stats.json"),
    }
    screenshot = result.figures.get("gui", {}).get("screenshot")
    if screenshot:
        result.outputs["live_window_screenshot"] = str(screenshot)
    atomic_write_json(out / "demo_summary.json", result.as_dict())
    return result


def _run(args: argparse.Namespace) -> int:
    from acquire.backends import roi_from_option
    from deepscope.cliutil import emit_json
    from model.store import reference_model_dir

    roi = roi_from_option(args.roi)
    if roi is None or roi.x is not None or roi.width != roi.height:
        raise InputError(f"--roi {' '.join(map(str, args.roi))}: the demo takes one side N")
    result = run_demo(
        Path(args.out),
        seed=args.seed,
        fields=args.fields,
        roi=roi.width,
        steps=args.steps,
        init=None if args.from_scratch else (args.init or reference_model_dir()),
        live_seconds=args.live_seconds,
        headless=args.headless,
    )
    if args.json:
        emit_json(result.as_dict())
        return 0
    print(f"\ndeepscope demo finished in {sum(result.stage_seconds.values()):.0f} s. Outputs:")
    for key, path in result.outputs.items():
        print(f"  {key:<18} {path}")
    print("Key figures:")
    print(json.dumps({k: result.figures[k] for k in ("train", "evaluate", "live")}, indent=2))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``deepscope demo``."""
    from deepscope.cliutil import common_options

    p = sub.add_parser(
        "demo",
        parents=[common_options()],
        help="run the whole pipeline on the simulated microscope",
        description=(
            "Simulated scope -> paired acquisition -> registration with QC -> training -> "
            "evaluation (bicubic, classical baselines, network) -> live enhanced preview. "
            "Rerunning resumes: finished fields, pairs and training steps are kept."
        ),
    )
    p.add_argument(
        "-o", "--out", default="demo-output", help="output directory (default: %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the slide and the splits")
    p.add_argument(
        "--fields", type=int, default=24, help="100x fields to acquire (default: %(default)s)"
    )
    add_roi_option(p, default=[512])
    p.add_argument(
        "--steps", type=int, default=150, help="fine-tuning steps (default: %(default)s)"
    )
    p.add_argument(
        "--init",
        type=Path,
        metavar="MODEL",
        help="model to fine-tune (default: the reference model shipped with deepscope)",
    )
    p.add_argument(
        "--from-scratch", action="store_true", help="train a new network instead of fine-tuning"
    )
    p.add_argument(
        "--live-seconds", type=float, default=5.0, help="length of the live preview (default: 5)"
    )
    p.add_argument(
        "--headless",
        action="store_true",
        help="no live window even where a display exists (figures and PNGs only)",
    )
    p.set_defaults(func=_run)
