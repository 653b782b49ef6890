"""Frame rate of the simulated microscope camera (``core.snapImage`` + ``core.getImage``).

Modes, per objective and frame size (RGB, 12-bit in uint16):

* ``same``: stage still (live view): the noise-free image is cached, only noise is new;
* ``fresh``: a new stage position each frame inside already-rendered slide tiles;
* ``new-area``: a new, never-rendered slide area each frame (tiles rendered on demand).

Baseline: a minimal pure-Python ``SimpleCameraDevice`` that only fills the buffer with a
constant frame, through the same UniMMCore (pymmcore-plus ships no Python demo camera, and the
C++ DemoCamera adapters are not installed here). Exposure is 0.1 ms so pacing does not count.

Usage: ``python bench/bench_simulator.py [--frames N] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pymmcore_plus.experimental.unicore import SimpleCameraDevice, UniMMCore

from simulators import make_core


class ConstantCamera(SimpleCameraDevice):
    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self._shape = shape
        self._frame = np.full(shape, 1000, np.uint16)
        self._exp = 0.1

    def sensor_shape(self):
        return self._shape

    def dtype(self):
        return np.uint16

    def get_exposure(self) -> float:
        return self._exp

    def set_exposure(self, exposure: float) -> None:
        self._exp = exposure

    def snap(self, buffer):
        buffer[:] = self._frame
        return {}


def timed(core, n, before=None) -> list[float]:
    out = []
    for i in range(n):
        if before is not None:
            before(i)
        t = time.perf_counter()
        core.snapImage()
        core.getImage()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=15)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    n = args.frames
    rows = []
    for size in (512, 2048):
        base = UniMMCore(mm_path=str(Path(__file__).parent))
        base.loadPyDevice("Cam", ConstantCamera((size, size, 3)))
        base.initializeAllDevices()
        base.setCameraDevice("Cam")
        t = timed(base, n)
        rows.append(("baseline", "-", size, statistics.median(t), n))
        for obj in ("40x", "100x"):
            core = make_core(seed=0, objective=obj)
            core.setExposure(0.1)
            off = (2048 - size) // 2
            core.setROI(off, off, size, size)
            core.setXYPosition(0.0, 0.0)
            core.snapImage()  # render the tiles around the origin
            rows.append((obj, "same", size, statistics.median(timed(core, n)), n))
            rows.append(
                (
                    obj,
                    "fresh",
                    size,
                    statistics.median(
                        timed(
                            core, n, lambda i, c=core: c.setXYPosition(0.5 * (i + 1), 0.3 * (i + 1))
                        )
                    ),
                    n,
                )
            )
            m = 3 if size == 2048 else n
            rows.append(
                (
                    obj,
                    "new-area",
                    size,
                    statistics.median(
                        timed(
                            core,
                            m,
                            lambda i, c=core: c.setXYPosition(-30000.0 + 2500.0 * i, -4000.0),
                        )
                    ),
                    m,
                )
            )
            print(rows[-3:], flush=True)
    base512 = {r[2]: r[3] for r in rows if r[0] == "baseline"}
    lines = [
        "| objective | mode | frame | median ms | fps | x baseline time | frames |",
        "|---|---|---|---|---|---|---|",
    ]
    for obj, mode, size, med, k in rows:
        lines.append(
            f"| {obj} | {mode} | {size}x{size} RGB | {med * 1000:.1f} | {1 / med:.1f} | "
            f"{med / base512[size]:.1f} | {k} |"
        )
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "date": datetime.now(UTC).isoformat(),
                    "machine": platform.machine(),
                    "rows": [
                        dict(
                            zip(("objective", "mode", "size", "median_s", "frames"), r, strict=True)
                        )
                        for r in rows
                    ],
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
