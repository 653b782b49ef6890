"""Live-mode soak: run live mode on the simulator for minutes and watch for leaks and drift.

Every ``--sample-s`` seconds it records the process's resident memory, the live thread count and
the pipeline's counters; at the end it compares the first and last thirds of the run (latency
median, memory) and checks that every raw frame offered for recording was written.

    python bench/soak_live.py --minutes 3 --record --json soak.json

Opt-in (not part of the test suite): it runs for minutes.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from gui.screenshot import tiny_model_dir
from live.pipeline import LivePipeline
from model.inference.engine import Enhancer
from simulators import make_core


def rss_mb() -> float:
    """Current resident set size of this process in MiB (from /proc, Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def soak(minutes: float, sample_s: float, roi: int, exposure_ms: float, record: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = tiny_model_dir(Path(tmp) / "model")
        core = make_core(seed=0)
        core.setConfig("Objective", "40x")
        core.setROI(1024 - roi // 2, 1024 - roi // 2, roi, roi)
        core.setExposure(exposure_ms)
        threads_before = threading.active_count()
        record_dir = Path(tmp) / "rec" if record else None
        pipe = LivePipeline(core, Enhancer.from_dir(model_dir), record_dir=record_dir)
        samples: list[dict[str, Any]] = []
        pipe.start()
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < minutes * 60:
                time.sleep(sample_s)
                st = pipe.stats()
                samples.append(
                    {
                        "t_s": round(time.monotonic() - t0, 1),
                        "rss_mb": round(rss_mb(), 1),
                        "threads": threading.active_count(),
                        **st.as_dict(),
                    }
                )
        finally:
            final = pipe.stop()
        threads_after = threading.active_count()
        written = len(list(record_dir.rglob("*.ome.tif"))) if record_dir else None
    third = max(len(samples) // 3, 1)
    first, last = samples[:third], samples[-third:]

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rows if r[key] is not None)

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "minutes": minutes,
        "roi": roi,
        "exposure_ms": exposure_ms,
        "final": final.as_dict(),
        "frames_written": written,
        "frames_lost": None if written is None else final.recorded - written,
        "threads_before": threads_before,
        "threads_after": threads_after,
        "rss_mb_first_third": med(first, "rss_mb"),
        "rss_mb_last_third": med(last, "rss_mb"),
        "latency_p50_ms_first_third": med(first, "latency_p50_ms"),
        "latency_p50_ms_last_third": med(last, "latency_p50_ms"),
        "samples": samples,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--sample-s", type=float, default=5.0)
    p.add_argument("--roi", type=int, default=256)
    p.add_argument("--exposure-ms", type=float, default=20.0)
    p.add_argument("--record", action="store_true", help="record every raw frame (OME-TIFF)")
    p.add_argument("--json", type=Path, help="write the full result here")
    args = p.parse_args()
    torch.set_num_threads(1)
    result = soak(args.minutes, args.sample_s, args.roi, args.exposure_ms, args.record)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
