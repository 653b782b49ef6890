"""Live recorder benchmark: frames per second the lossless recorder writes, before and after.

Two measurements, each for every ``--dirs`` (e.g. a tmpfs and a disk) and ``--sizes`` (square
RGB uint16 frames), with the writer variants interleaved in rounds so that a busy machine
slows all of them alike:

* throughput (default): :class:`live.recorder.Recorder` fed as fast as it takes frames
  (``put(block=True)``) for ``--frames`` frames; frames/s from the first put to the end of
  ``close`` (every frame on disk). Median, min and max over ``--rounds``.
* ``--rate FPS --seconds S``: live mode's own path at a camera's pace, a
  :class:`~live.pipeline.LivePipeline` fed by a
  :class:`~live.sources.ReplaySource` with the pipeline's default 1 GiB queue: frames
  sent, recorded, lost, the deepest the queue got.

``--busy-threads N`` runs N threads of pure Python meanwhile, as a busy GUI thread is for the
writer: each call that blocks (write, fsync, rename) hands the GIL over, and a thread that never
blocks gives it back only after the 5 ms switch interval.

Variants: ``before`` is the recorder as it was (main at 2df313c): OME-XML rendered by ome-types
for every frame, and three fsyncs per frame (file, directory, ``frames.jsonl``). ``template``
adds only the OME-XML template. ``after`` is the recorder now: template, no fsync on the
writer thread; a second thread fsyncs the frames written since its last pass, the manifest and
the directories once a second (it runs under ``before`` and ``template`` too, where it finds
nothing to do: their per-frame write fsyncs itself and hands that thread no file).

    python bench/bench_recorder.py --dirs /dev/shm /var/tmp --sizes 512 2048 --json rec.json
    python bench/bench_recorder.py --dirs /var/tmp --sizes 512 --rate 97 --seconds 20

Opt-in (not part of the test suite). Everything written is deleted after each run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import deepscope.ometiff as ometiff
from deepscope.atomic import append_jsonl
from deepscope.framemeta import image_meta
from live.pipeline import LivePipeline
from live.recorder import MANIFEST, Recorder, RecordItem
from live.sources import ReplaySource
from simulators import make_core, nominal_pixel_size_um

META = {
    "x_um": 10.0,
    "y_um": -5.0,
    "z_um": 1.2,
    "exposure_ms": 10.0,
    "objective": "40x",
    "pixel_size_um": nominal_pixel_size_um("40x"),
}
VARIANTS = ("before", "template", "after")


def _write_fsync_each(self: Recorder, item: RecordItem) -> None:
    """The recorder's write before the change: directory and manifest fsynced per frame."""
    name = f"frame_{item.index:06d}.ome.tif"
    meta = image_meta(item.meta, name="live", t_s=item.t_s)
    ometiff.write_ome_tiff(self.directory / item.kind / name, item.image, meta)
    record = {"kind": item.kind, "index": item.index, "file": f"{item.kind}/{name}"}
    append_jsonl(self.directory / MANIFEST, {**record, **item.meta})
    with self._lock:
        self.written[item.kind] += 1


def _full_render(shape: tuple[int, ...], dtype: Any, meta: ometiff.ImageMeta) -> str:
    return ometiff._render_ome_xml(tuple(shape), str(np.dtype(dtype)), meta)


@contextlib.contextmanager
def variant(name: str) -> Iterator[None]:
    """Patch the recorder into *name* for the duration of the block."""
    saved = ometiff.ome_xml, Recorder._write
    if name == "before":
        ometiff.ome_xml = _full_render  # type: ignore[assignment]
    if name in ("before", "template"):
        Recorder._write = _write_fsync_each  # type: ignore[method-assign]
    try:
        yield
    finally:
        ometiff.ome_xml, Recorder._write = saved  # type: ignore[method-assign]


def frame(size: int) -> np.ndarray:
    """A 12-bit noisy RGB uint16 frame (uncompressed writes do not depend on the values)."""
    return np.random.default_rng(0).integers(0, 4096, (size, size, 3), dtype=np.uint16)


def throughput(root: Path, size: int, frames: int, name: str) -> float:
    """Frames per second the recorder writes when never waiting for frames."""
    image, meta = frame(size), META
    with tempfile.TemporaryDirectory(dir=root) as tmp, variant(name):
        rec = Recorder(Path(tmp), max_queued=4)
        rec.start()
        t0 = time.perf_counter()
        for i in range(frames):
            rec.put(RecordItem("raw", i, image, meta, 0.01 * i), block=True)
        if not rec.close(timeout=600):
            raise RuntimeError("the writer did not finish")
        dt = time.perf_counter() - t0
        if rec.error is not None or rec.count("raw") != frames:
            raise RuntimeError(f"recording failed: {rec.error}")
    return frames / dt


def at_rate(root: Path, size: int, fps: float, seconds: float, name: str) -> dict[str, Any]:
    """Live mode's path (pipeline + replayed camera) recording at *fps* for *seconds*."""
    core = make_core(seed=0, sensor=(size, size))
    with tempfile.TemporaryDirectory(dir=root) as tmp, variant(name):
        pipe = LivePipeline(core, None, camera=False, record_dir=Path(tmp))
        pipe.start()
        source = ReplaySource([frame(size)], fps, pipe.submit, META)
        deepest, stop = 0, threading.Event()

        def watch() -> None:
            nonlocal deepest
            while not stop.wait(0.05):
                st = pipe.stats()
                deepest = max(deepest, st.frames_in - st.recorded)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        source.start()
        end = time.monotonic() + seconds
        while time.monotonic() < end and pipe.running:
            time.sleep(0.05)
        source.stop()
        stop.set()
        watcher.join()
        error = None
        try:
            stats = pipe.stop(timeout=600)
        except Exception as exc:  # the overflow is the result being measured
            error, stats = str(exc), pipe.stats()
    return {
        "variant": name,
        "sent": source.sent,
        "recorded": stats.recorded,
        "lost": source.sent - stats.recorded,
        "deepest_queue": deepest,
        "camera_fps": stats.camera_fps,
        "error": error,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dirs", type=Path, nargs="+", default=[Path("/dev/shm")])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--frames", type=int, default=None, help="per run (default ~240 MB/run)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--rate", type=float, default=None, help="camera fps: the paced measurement")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--busy-threads", type=int, default=0, help="pure-Python threads meanwhile")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    load0 = os.getloadavg()[0]
    done = threading.Event()
    for _ in range(args.busy_threads):
        threading.Thread(target=busy, args=(done,), daemon=True).start()
    results: list[dict[str, Any]] = []
    for root in args.dirs:
        for size in args.sizes:
            frames = args.frames or max(20, int(240e6 // (size * size * 6)))
            if args.rate is not None:
                for name in args.variants:
                    row = at_rate(root, size, args.rate, args.seconds, name)
                    results.append({"dir": str(root), "size": size, "fps": args.rate, **row})
                    print(json.dumps(results[-1]), flush=True)
                continue
            runs: dict[str, list[float]] = {name: [] for name in args.variants}
            for _ in range(args.rounds):
                for name in args.variants:
                    runs[name].append(throughput(root, size, frames, name))
            for name, fps in runs.items():
                results.append(
                    {
                        "dir": str(root),
                        "fs": fs_type(root),
                        "size": size,
                        "variant": name,
                        "frames": frames,
                        "fps_median": round(statistics.median(fps), 1),
                        "fps_min": round(min(fps), 1),
                        "fps_max": round(max(fps), 1),
                        "ms_per_frame": round(1e3 / statistics.median(fps), 2),
                    }
                )
                print(json.dumps(results[-1]), flush=True)
    done.set()
    summary = {
        "what": "live recorder frames/s (bench/bench_recorder.py)",
        "busy_threads": args.busy_threads,
        "results": results,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_1min_before_after": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "argv": sys.argv[1:],
    }
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "results"}))
    return 0


def busy(done: threading.Event) -> None:
    """Run Python bytecode without blocking until *done* (a stand-in for a busy GUI thread)."""
    n = 0
    while not done.is_set():
        n += 1


def fs_type(path: Path) -> str:
    """The filesystem type holding *path* (from /proc/mounts; Linux)."""
    best, kind = "", "?"
    for line in Path("/proc/mounts").read_text().splitlines():
        mount, fstype = line.split()[1:3]
        if str(path.resolve()).startswith(mount) and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


if __name__ == "__main__":
    sys.exit(main())
