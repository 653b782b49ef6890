"""Registration accuracy against the simulator's ground truth, and seconds per pair.

Accuracy: a 3x3 grid of 40x tiles and N 100x fields snapped on the simulated microscope
(objective offsets, rotations, magnification errors and stage errors on); every accepted pair's
estimated 100x->tile map is compared with the true one from both frames' ``pixel_to_slide``:
translation error at the field centre (100x pixels, RMS over fields), rotation error (deg) and
scale error (%) of the map.

Speed: the same with 1024x1024 100x fields (5-slice z-stacks, EDOF on and off); registration
is repeated and the median seconds per pair reported (stitching, location, the common
rotation/scale fit, cropping, warping and writing included).

    python bench/bench_registration.py --fields 20 --accuracy-px 512 --speed-px 1024 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from deepscope.formats.pairs import load_pairset
from model.registration import RegistrationOptions, register_dataset
from simulators import nominal_pixel_size_um
from simulators.dataset import SimulatedDataset, make_simulated_dataset, tissue_region
from simulators.microscope import pixel_to_slide

#: The simulated 40x pixel size (um): tile regions are sized in tile pixels.
TILE_PX_UM = nominal_pixel_size_um("40x")


def errors(sim: SimulatedDataset, pairs_dir: Path, px: int) -> dict[str, float]:
    """Errors of the accepted pairs against the truth."""
    pairset = load_pairset(pairs_dir)
    rows, cols = np.meshgrid(np.linspace(0, px - 1, 3), np.linspace(0, px - 1, 3), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    centre, rot, scale = [], [], []
    for p in pairset.accepted():
        tile = sim.truths[p.extra["tile"]]
        tr, tc = np.mgrid[0 : tile.sensor[0] : 64, 0 : tile.sensor[1] : 64]
        tx, ty = pixel_to_slide(tile, tr.ravel(), tc.ravel())
        coef, *_ = np.linalg.lstsq(
            np.column_stack([tx, ty, np.ones_like(tx)]),
            np.column_stack([tc.ravel(), tr.ravel()]),
            rcond=None,
        )
        sx, sy = pixel_to_slide(sim.truths[p.field_id], rows, cols)
        truth = np.column_stack([sx, sy, np.ones_like(sx)]) @ coef
        est = np.array(p.extra["to_tile"])
        mapped = np.column_stack([cols, rows]) @ est[:, :2].T + est[:, 2]
        centre.append(float(np.linalg.norm(mapped[4] - truth[4])) * pairset.scale)
        dt, de = truth[2] - truth[0], mapped[2] - mapped[0]
        rot.append(float(np.degrees(np.arctan2(de[1], de[0]) - np.arctan2(dt[1], dt[0]))))
        scale.append(float(np.linalg.norm(de) / np.linalg.norm(dt) - 1) * 100)
    return {
        "pairs": len(centre),
        "translation_rms_100x_px": float(np.sqrt(np.mean(np.square(centre)))),
        "translation_max_100x_px": float(np.max(centre)),
        "rotation_max_abs_deg": float(np.max(np.abs(rot))),
        "scale_max_abs_pct": float(np.max(np.abs(scale))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fields", type=int, default=20)
    ap.add_argument("--speed-fields", type=int, default=8)
    ap.add_argument("--accuracy-px", type=int, default=512)
    ap.add_argument("--speed-px", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_reg_"))
    result: dict[str, object] = {
        "machine": platform.processor() or platform.machine(),
        "cpu_count": __import__("os").cpu_count(),
        "opencv_threads": cv2.getNumThreads(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "args": vars(args),
    }
    try:
        acc = make_simulated_dataset(
            work / "acc",
            seed=args.seed,
            sensor_px=args.accuracy_px,
            n_targets=args.fields,
            z_slices=1,
            min_tissue=0.7,
            centre_um=tissue_region(args.seed, 2.7 * args.accuracy_px * TILE_PX_UM),
        )
        summary = register_dataset(acc.path, work / "acc_pairs")
        result["accuracy"] = {
            "fields": summary.fields,
            "accepted": summary.accepted,
            "rejections": summary.rejections,
            **errors(acc, work / "acc_pairs", args.accuracy_px),
        }
        speed = make_simulated_dataset(
            work / "speed",
            seed=args.seed + 1,
            sensor_px=args.speed_px,
            n_targets=args.speed_fields,
            z_slices=5,
            min_tissue=0.7,
            centre_um=tissue_region(args.seed + 1, 2.7 * args.speed_px * TILE_PX_UM),
        )
        timings: dict[str, object] = {}
        for edof in (True, False):
            per_pair, per_field = [], []
            for r in range(args.repeats):
                out = work / f"speed_pairs_{edof}_{r}"
                t0 = time.perf_counter()
                s = register_dataset(speed.path, out, RegistrationOptions(edof=edof))
                per_pair.append((time.perf_counter() - t0) / max(s.fields, 1))
                per_field.append((s.timings_s["locate"] + s.timings_s["finish"]) / s.fields)
                last = s.timings_s
                shutil.rmtree(out)
            timings["edof" if edof else "best_slice"] = {
                "fields": s.fields,
                "accepted": s.accepted,
                "median_s_per_pair": statistics.median(per_pair),
                "min_s_per_pair": min(per_pair),
                "max_s_per_pair": max(per_pair),
                "median_s_per_field_marginal": statistics.median(per_field),
                "last_run_timings_s": last,
            }
        result["speed_1024"] = timings
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
