"""Overhead of the acquisition pipeline over the bare simulated hardware.

For the same plan and simulator seed, times (a) ``run_acquisition`` end to end (pycromanager
events and hooks, read-back, OME-TIFF writing, manifest) and (b) the bare core calls the run
made: objective changes, XY/Z moves and snaps, replayed from the dataset. Both start from a
fresh core; one discarded warm-up run first fills the simulator's process-wide PSF cache, so that
neither side pays for it, and its dataset is replayed for the bare timing. Pipeline and bare
runs alternate order; the overhead is the median of the per-pair ratios, of wall time and of
process CPU time (all threads; robust when other jobs load the machine). Prints JSON.

    python bench/bench_acquire.py --repeats 5 --roi 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from acquire.plan import AcquisitionPlan
from acquire.runner import run_acquisition
from deepscope.formats.dataset import open_dataset
from simulators import make_core, nominal_pixel_size_um


def make_plan(roi: int) -> AcquisitionPlan:
    return AcquisitionPlan.from_dict(
        {
            "name": "bench",
            "region": {
                "x_um": 0,
                "y_um": 0,
                "width_um": nominal_pixel_size_um("40x") * roi * 2.5,  # 2.5 fields across
                "height_um": nominal_pixel_size_um("40x") * roi * 2.5,
            },
            "camera_roi": {"width": roi, "height": roi},
            "tiles": {"exposure_ms": 5},
            "targets": {
                "count": 6,
                "seed": 0,
                "exposure_ms": 10,
                "z": {"slices": 5, "step_um": 0.4},
            },
        }
    )


def replay(out: Path, seed: int, roi: int) -> tuple[float, float]:
    """Wall and CPU seconds of the bare core calls behind the dataset in *out* (same order)."""
    ds = open_dataset(out)
    steps = []
    for rec in ds.done():
        _, meta = ds.load(rec)
        exposure = ds.info.plan["tiles" if rec.role == "tile" else "targets"]["exposure_ms"]
        steps.extend((rec.objective, exposure, p.x_um, p.y_um, p.z_um) for p in meta.planes)
    core = make_core(seed=seed)
    w, h = core.getImageWidth(), core.getImageHeight()
    core.setROI((w - roi) // 2, (h - roi) // 2, roi, roi)
    current = None
    t0, c0 = time.perf_counter(), time.process_time()
    for objective, exposure, x, y, z in steps:
        if objective != current:
            core.setConfig("Objective", objective)
            core.waitForConfig("Objective", objective)
            core.setExposure(exposure)
            current = objective
        core.setXYPosition(x, y)
        core.waitForDevice(core.getXYStageDevice())
        core.setPosition(z)
        core.waitForDevice(core.getFocusDevice())
        core.snapImage()
        core.getImage()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--roi", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    plan = make_plan(args.roi)
    tmp = Path(tempfile.mkdtemp(prefix="bench_acq_"))
    try:
        # warm-up: fills the process-wide PSF cache; its dataset is the replay script
        warm = run_acquisition(plan, tmp / "warm", make_core(seed=args.seed))
        wall: dict[str, list[float]] = {"pipeline": [], "bare": [], "ratio": []}
        cpu: dict[str, list[float]] = {"pipeline": [], "bare": [], "ratio": []}
        for i in range(args.repeats):
            # alternate the order so that drifting machine load hits both sides alike
            if i % 2:
                b, bc = replay(tmp / "warm", args.seed, args.roi)
            t0, c0 = time.perf_counter(), time.process_time()
            run_acquisition(plan, tmp / f"run{i}", make_core(seed=args.seed))
            p, pc = time.perf_counter() - t0, time.process_time() - c0
            if not i % 2:
                b, bc = replay(tmp / "warm", args.seed, args.roi)
            for d, (x, y) in ((wall, (p, b)), (cpu, (pc, bc))):
                d["pipeline"].append(x)
                d["bare"].append(y)
                d["ratio"].append(x / y - 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = warm.done
    result: dict[str, object] = {
        "fields": n,
        "roi": args.roi,
        "repeats": args.repeats,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "load_avg_1min": os.getloadavg()[0],
    }
    for name, d in (("wall", wall), ("cpu", cpu)):
        result[name] = {
            "pipeline_s_per_field_median": statistics.median(d["pipeline"]) / n,
            "bare_s_per_field_median": statistics.median(d["bare"]) / n,
            "overhead_median": statistics.median(d["ratio"]),
            "overhead_min": min(d["ratio"]),
            "overhead_max": max(d["ratio"]),
        }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
