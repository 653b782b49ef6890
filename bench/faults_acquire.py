"""Acquisition under random hardware faults: how many were injected, survived, and recorded.

Runs a paired acquisition on the simulator with random camera failures, camera timeouts and
stage move errors, counts every fault the simulator raised, then checks the dataset: every
field is either done (its OME-TIFF complete and readable, with one plane per z slice) or
recorded as failed with a reason; no field appears twice; no partial file is left.

    python bench/faults_acquire.py --camera-rate 0.05 --stage-rate 0.03 --json faults.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from acquire.plan import AcquisitionPlan
from acquire.runner import run_acquisition
from deepscope.atomic import read_jsonl
from deepscope.errors import HardwareError
from deepscope.formats.dataset import MANIFEST_NAME, open_dataset
from deepscope.ometiff import read_ome_tiff
from simulators import FaultConfig, make_core, microscope_of

PLAN: dict[str, Any] = {
    "name": "faults",
    "region": {"x_um": 0.0, "y_um": 0.0, "width_um": 120.0, "height_um": 120.0},
    "camera_roi": {"width": 256, "height": 256},
    "tiles": {"objective": "40x", "overlap": 0.15, "exposure_ms": 2},
    "targets": {"objective": "100x", "count": 12, "seed": 1, "exposure_ms": 2, "z": {"slices": 3}},
    "retries": 3,
    "on_failure": "continue",
}


def counting(fn: Callable[[str], None], counter: Counter[str], kind: str) -> Callable[[str], None]:
    """Wrap a fault hook so that every fault it raises is counted under *kind*."""

    def wrapped(device: str) -> None:
        try:
            fn(device)
        except HardwareError as exc:
            counter["timeout" if "timed out" in str(exc) else kind] += 1
            raise

    return wrapped


def run(camera_rate: float, timeout_rate: float, stage_rate: float, seed: int) -> dict[str, Any]:
    faults = FaultConfig(
        seed=seed,
        camera_failure_rate=camera_rate,
        camera_timeout_rate=timeout_rate,
        camera_timeout_s=0.05,
        stage_error_rate=stage_rate,
    )
    core = make_core(seed=seed, faults=faults)
    injector = microscope_of(core).faults
    injected: Counter[str] = Counter()
    injector.before_snap = counting(injector.before_snap, injected, "camera")  # type: ignore[method-assign]
    injector.before_move = counting(injector.before_move, injected, "stage")  # type: ignore[method-assign]
    plan = AcquisitionPlan.from_dict(PLAN)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ds"
        summary = run_acquisition(plan, out, core)
        ds = open_dataset(out)
        lines = read_jsonl(out / MANIFEST_NAME)
        ids = [r.field_id for r in ds.records]
        unreadable = 0
        for rec in ds.done():
            data, meta = read_ome_tiff(ds.path_of(rec))
            slices = plan.targets.z.slices if rec.role == "target" else plan.tiles.z.slices
            unreadable += int(data.shape[0] != slices or len(meta.planes) != slices)
        partials = len(list(out.rglob("*.partial")))
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "faults": faults.model_dump(),
        "snaps": injector.snaps,
        "moves": injector.moves,
        "faults_injected": dict(injected),
        "fields_total": summary.total,
        "fields_done": summary.done,
        "fields_failed": summary.failed,
        "retries_used": sum(r.attempts - 1 for r in ds.records),
        "failure_reasons": [r.reason for r in ds.failed()],
        "manifest_lines": len(lines),
        "duplicate_fields": len(ids) - len(set(ids)),
        "done_files_unreadable_or_incomplete": unreadable,
        "partial_files_left": partials,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--camera-rate", type=float, default=0.05)
    p.add_argument("--timeout-rate", type=float, default=0.01)
    p.add_argument("--stage-rate", type=float, default=0.03)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    result = run(args.camera_rate, args.timeout_rate, args.stage_rate, args.seed)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
