"""The lossless recorder at camera rate, and what a recording killed with SIGKILL leaves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from deepscope.atomic import PARTIAL_SUFFIX, read_jsonl
from deepscope.ometiff import read_ome_tiff
from live.pipeline import LivePipeline
from live.recorder import MANIFEST
from live.sources import ReplaySource
from simulators.core import make_core

ROOT = Path(__file__).resolve().parents[1]
META = {"x_um": 10.0, "y_um": -5.0, "z_um": 1.2, "exposure_ms": 5.0, "objective": "40x"}


def test_a_recording_at_camera_rate_loses_no_frame(tmp_path: Path) -> None:
    # 256x256 RGB frames at the GUI camera's ~100 fps, with 30 frames of queue: a writer
    # that needs more than a frame period per frame (the per-frame ome-types render and three
    # fsyncs did, ~10-18 ms) overflows the queue and stops the recording within seconds
    core = make_core(seed=0, sensor=(256, 256))
    frame_mb = 256 * 256 * 3 * 2 / 2**20
    rec = tmp_path / "rec"
    budget_mb = 40 * frame_mb
    pipeline = LivePipeline(core, None, camera=False, record_dir=rec, record_budget_mb=budget_mb)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 4096, (256, 256, 3), dtype=np.uint16) for _ in range(4)]
    pipeline.start()
    source = ReplaySource(frames, 100.0, pipeline.submit, {**META, "pixel_size_um": 0.185})
    source.start()
    end = time.monotonic() + 3.0
    while time.monotonic() < end and pipeline.running:
        time.sleep(0.05)
    source.stop()
    stats = pipeline.stop(timeout=30.0)  # raises RecordingOverflowError if the queue filled
    assert source.error is None
    assert stats.frames_in == source.sent == stats.recorded >= 150
    entries = read_jsonl(rec / MANIFEST)
    assert [e["index"] for e in entries] == list(range(source.sent))
    assert len(list((rec / "raw").glob("*.ome.tif"))) == source.sent
    image, meta = read_ome_tiff(rec / entries[-1]["file"])
    np.testing.assert_array_equal(image[0], frames[(source.sent - 1) % 4])
    assert (meta.planes[0].x_um, meta.planes[0].z_um) == (10.0, 1.2)


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from pathlib import Path
    from live.recorder import Recorder, RecordItem

    rec = Recorder(Path(sys.argv[1]), max_queued=4)
    rec.start()
    image = np.random.default_rng(0).integers(0, 4096, (64, 64, 3), dtype=np.uint16)
    meta = {"x_um": 1.0, "y_um": 2.0, "z_um": 3.0, "objective": "40x", "pixel_size_um": 0.185}
    i = 0
    while True:  # as fast as the writer takes them, until killed
        rec.put(RecordItem("raw", i, image, {**meta, "x_um": float(i)}, 0.01 * i), block=True)
        i += 1
    """
)


def test_a_killed_recording_keeps_every_listed_frame_readable(tmp_path: Path) -> None:
    lines = 100
    rec = tmp_path / "rec"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(rec)], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (rec / MANIFEST).is_file() or len(read_jsonl(rec / MANIFEST)) < lines:
            assert proc.poll() is None, "the writer ended before it was killed"
            assert time.monotonic() < deadline, "the writer wrote too few frames"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        assert proc.wait(timeout=30) == -signal.SIGKILL
    entries = read_jsonl(rec / MANIFEST)  # a line cut short by the kill is skipped
    n = len(entries)
    assert n >= lines
    assert [e["index"] for e in entries] == list(range(n))
    files = sorted(p.name for p in (rec / "raw").glob("*.ome.tif"))
    listed = [Path(e["file"]).name for e in entries]
    # every listed frame is there; at most the frame being written is there without its line
    assert files[:n] == listed
    assert len(files) - n in (0, 1)
    assert len(list((rec / "raw").glob(f"*{PARTIAL_SUFFIX}"))) <= 1
    for name in files:
        image, meta = read_ome_tiff(rec / "raw" / name)
        assert image.shape == (1, 64, 64, 3)
        assert meta.planes[0].x_um == float(int(name[6:12]))
        assert meta.pixel_size_um == 0.185
