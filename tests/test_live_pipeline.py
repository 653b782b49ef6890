from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from deepscope.atomic import read_jsonl
from deepscope.errors import HardwareError, InputError
from deepscope.ometiff import read_ome_tiff
from live.enhancer import FrameEnhancer
from live.frames import LiveStats
from live.pipeline import LivePipeline, record_queue_frames
from live.recorder import Recorder, RecordingOverflowError, RecordItem
from live.sources import ReplaySource
from model.config import ModelConfig, NetworkConfig, Normalisation
from model.inference.engine import Enhancer, Output
from model.inference.view import ViewRequest, ViewWindow
from model.network import DeepMicroscopyNet
from simulators.core import SimulatedCore, make_core

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def core() -> Iterator[SimulatedCore]:
    c = make_core(seed=3, sensor=(48, 64))
    c.setExposure(5.0)
    yield c
    if c.isSequenceRunning():
        c.stopSequenceAcquisition()


@pytest.fixture
def enhancer() -> Enhancer:
    torch.manual_seed(0)
    net = DeepMicroscopyNet(NetworkConfig(base_channels=4, num_blocks=1, alpha=2))
    config = ModelConfig(network=net.config, normalisation=Normalisation.identity(3, 4095.0))
    return Enhancer(net, config, device="cpu")


class SlowEnhancer:
    """A :class:`FrameEnhancer` that takes *delay_s* per frame, slower than the camera."""

    def __init__(self, inner: Enhancer, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.scale = inner.scale
        self.pixel_size_mismatch = inner.pixel_size_mismatch

    overlaps = False

    def enhance_async(self, image: np.ndarray, **kw: Any) -> Callable[[], Output]:
        time.sleep(self.delay_s)
        out = self.inner.enhance_async(image, **kw)()
        return lambda: out


class DeferredEnhancer:
    """A :class:`FrameEnhancer` like the CUDA path: ``enhance_async`` returns at once, the work
    happens on collect."""

    overlaps = True

    def __init__(self, inner: Enhancer) -> None:
        self.inner = inner
        self.scale = inner.scale
        self.pixel_size_mismatch = inner.pixel_size_mismatch
        self.started: list[int] = []

    def enhance_async(self, image: np.ndarray, **kw: Any) -> Callable[[], Output]:
        self.started.append(int(image[0, 0, 0]))
        return lambda: self.inner.enhance_async(image, **kw)()


def test_the_model_and_the_test_enhancers_are_live_enhancers(enhancer: Enhancer) -> None:
    for candidate in (enhancer, SlowEnhancer(enhancer, 0.0), DeferredEnhancer(enhancer)):
        assert isinstance(candidate, FrameEnhancer)
    assert not isinstance(object(), FrameEnhancer)


def ours() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name != "tqdm_monitor"}


def wait_for(pipeline: LivePipeline, frames: int, enhanced: int = 0, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        stats = pipeline.stats()
        if stats.frames_in >= frames and stats.frames_enhanced >= enhanced:
            return
        time.sleep(0.01)


def test_frames_flow_and_stop_joins_every_thread(core: SimulatedCore, enhancer: Enhancer) -> None:
    before = ours()
    pipeline = LivePipeline(core, enhancer)
    pipeline.start()
    assert pipeline.running
    wait_for(pipeline, 10, enhanced=2)
    frame = pipeline.latest()
    stats = pipeline.stop()
    assert ours() == before
    assert not pipeline.running
    assert not core.isSequenceRunning()
    assert isinstance(stats, LiveStats)
    assert stats.frames_in >= 10
    assert stats.frames_enhanced >= 1
    assert stats.frames_enhanced + stats.dropped <= stats.frames_in
    p50, p95, p99 = stats.latency_p50_ms, stats.latency_p95_ms, stats.latency_p99_ms
    assert p50 is not None
    assert p95 is not None
    assert p99 is not None
    assert p50 <= p95 <= p99
    assert stats.camera_fps is not None
    assert stats.camera_fps > 0
    assert frame is not None
    assert frame.raw.shape == (48, 64, 3)
    assert frame.enhanced is not None
    assert frame.enhanced.shape == (120, 160, 3)
    assert frame.ready_s is not None
    assert frame.ready_s >= frame.arrival_s
    assert frame.meta["objective"] == "40x"
    assert frame.meta["pixel_size_um"] == pytest.approx(0.185)
    assert frame.meta["exposure_ms"] == pytest.approx(5.0)
    assert set(stats.as_dict()) >= {"frames_in", "dropped", "latency_p99_ms", "inference_fps"}


def test_slow_model_drops_preview_frames_but_records_all(
    core: SimulatedCore, enhancer: Enhancer, tmp_path: Path
) -> None:
    slow = SlowEnhancer(enhancer, 0.1)
    pipeline = LivePipeline(core, slow, record_dir=tmp_path / "rec", save_enhanced=True)  # type: ignore[arg-type]
    pipeline.start()
    wait_for(pipeline, 25)
    stats = pipeline.stop()
    assert stats.dropped > 0
    assert stats.frames_enhanced < stats.frames_in
    assert stats.frames_enhanced + stats.dropped <= stats.frames_in
    raw_files = sorted((tmp_path / "rec" / "raw").glob("*.ome.tif"))
    assert len(raw_files) == stats.frames_in == stats.recorded
    enhanced_files = sorted((tmp_path / "rec" / "enhanced").glob("*.ome.tif"))
    assert len(enhanced_files) == stats.frames_enhanced
    data, meta = read_ome_tiff(raw_files[-1])
    assert data.shape == (1, 48, 64, 3)
    assert meta.pixel_size_um == pytest.approx(0.185)
    enh, emeta = read_ome_tiff(enhanced_files[0])
    assert enh.shape == (1, 120, 160, 3)
    assert emeta.pixel_size_um == pytest.approx(0.185 / 2.5)
    manifest = read_jsonl(tmp_path / "rec" / "frames.jsonl")
    assert sorted(r["index"] for r in manifest if r["kind"] == "raw") == list(
        range(stats.frames_in)
    )


def test_recording_queue_holds_the_budget_in_real_rgb_frames(core: SimulatedCore) -> None:
    # an RGB camera reports 8 bytes per pixel (4 components of 16 bit); counting the components
    # again sized the queue for a quarter of the frames the budget holds
    core.snapImage()
    frame_bytes = np.asarray(core.getImage()).nbytes
    budget_mb = 400 * frame_bytes / 2**20
    frames = record_queue_frames(core, budget_mb)
    assert 400 * 0.7 <= frames <= 400


def test_recording_overflow_fails_loudly(
    core: SimulatedCore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = Recorder._write

    def slow_write(self: Recorder, item: RecordItem) -> None:
        time.sleep(0.2)
        real_write(self, item)

    monkeypatch.setattr(Recorder, "_write", slow_write)
    before = ours()
    frame_mb = 48 * 64 * 3 * 2 / 2**20
    pipeline = LivePipeline(core, None, record_dir=tmp_path, record_budget_mb=4 * frame_mb)
    pipeline.start()
    end = time.monotonic() + 20
    while pipeline.running and time.monotonic() < end:
        time.sleep(0.01)
    assert not pipeline.running
    assert isinstance(pipeline.error, RecordingOverflowError)
    with pytest.raises(RecordingOverflowError, match="queue full"):
        pipeline.stop()
    assert ours() == before
    assert not core.isSequenceRunning()
    # every frame that entered the queue was written before the writer stopped
    assert len(list((tmp_path / "raw").glob("*.ome.tif"))) == pipeline.stats().recorded


def test_switching_model_and_self_feed_while_running(
    core: SimulatedCore, enhancer: Enhancer
) -> None:
    pipeline = LivePipeline(core, None)
    pipeline.start()
    wait_for(pipeline, 3)
    raw_only = pipeline.latest()
    pipeline.set_enhancer(enhancer)
    pipeline.set_self_feed(True)
    n = pipeline.stats()
    wait_for(pipeline, n.frames_in + 5, enhanced=n.frames_enhanced + 2)
    enhanced = pipeline.latest()
    stats = pipeline.stop()
    assert raw_only is not None
    assert raw_only.enhanced is None
    assert enhanced is not None
    assert enhanced.enhanced is not None
    assert stats.frames_enhanced >= 1


def test_acquisition_hook_feeds_the_pipeline(core: SimulatedCore, enhancer: Enhancer) -> None:
    core.setXYPosition(120.0, -40.0)
    pipeline = LivePipeline(core, enhancer, camera=False)
    hook = pipeline.acquisition_hook()
    pipeline.start()
    image = np.full((48, 64, 3), 1000, np.uint16)
    md = {"Axes": {"time": 0}}
    out_image, out_md = hook(image, md)
    assert out_image is image
    assert out_md is md
    end = time.monotonic() + 10
    while pipeline.stats().frames_enhanced < 1 and time.monotonic() < end:
        time.sleep(0.01)
    frame = pipeline.latest()
    stats = pipeline.stop()
    assert stats.frames_in == 1
    assert frame is not None
    assert frame.enhanced is not None
    assert frame.meta["x_um"] == pytest.approx(core.getXPosition())
    assert frame.meta["y_um"] == pytest.approx(core.getYPosition())


PYCRO_LIVE = textwrap.dedent(
    """
    import json, sys, torch
    from pathlib import Path
    from pycromanager import Acquisition, multi_d_acquisition_events
    from live.pipeline import LivePipeline, record_queue_frames
    from acquire.pycro_core import pycro_engine
    from model.config import ModelConfig, NetworkConfig
    from model.inference.engine import Enhancer
    from model.network import DeepMicroscopyNet
    from simulators import make_core

    torch.set_num_threads(1)
    net = DeepMicroscopyNet(NetworkConfig(base_channels=4, num_blocks=1, alpha=2))
    enhancer = Enhancer(net, ModelConfig(network=net.config), device="cpu")
    core = make_core(seed=3)
    core.setROI(0, 0, 48, 48)
    pipeline = LivePipeline(core, enhancer, camera=False, record_dir=Path(sys.argv[1]))
    pipeline.start()
    with pycro_engine(core):
        with Acquisition(image_process_fn=pipeline.acquisition_hook(), show_display=False) as acq:
            acq.acquire(multi_d_acquisition_events(
                xy_positions=[[0.0, 0.0], [150.0, 75.0]], z_start=-1.0, z_end=1.0, z_step=1.0))
    print(json.dumps(pipeline.stop().as_dict()))
    """
)


def test_pycromanager_acquisition_hook_records_every_image(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PYCRO_LIVE, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    assert stats["frames_in"] == stats["recorded"] == 6
    assert stats["frames_enhanced"] >= 1
    rows = [r for r in read_jsonl(tmp_path / "frames.jsonl") if r["kind"] == "raw"]
    assert {(r["x_um"], r["y_um"]) for r in rows} == {(0.0, 0.0), (150.0, 75.0)}
    assert sorted({r["z_um"] for r in rows}) == [-1.0, 0.0, 1.0]


def test_overlapping_enhancer_publishes_every_started_frame_in_order(
    core: SimulatedCore, enhancer: Enhancer
) -> None:
    deferred = DeferredEnhancer(enhancer)
    pipeline = LivePipeline(core, deferred, camera=False)  # type: ignore[arg-type]
    pipeline.start()
    seen = []
    for i in range(6):
        pipeline.submit(np.full((16, 20, 3), i, np.uint16), {"pixel_size_um": 0.185})
        end = time.monotonic() + 10
        # a lone in-flight frame is collected without waiting for the next one
        while pipeline.stats().frames_enhanced < i + 1 and time.monotonic() < end:
            time.sleep(0.005)
        frame = pipeline.latest()
        assert frame is not None
        seen.append(frame.index)
    stats = pipeline.stop()
    assert seen == list(range(6))
    assert deferred.started == list(range(6))
    assert stats.frames_enhanced == stats.frames_in == 6
    assert stats.dropped == 0


def test_enhance_async_on_cpu_equals_enhance(enhancer: Enhancer) -> None:
    frame = np.random.default_rng(0).integers(0, 4096, (20, 24, 3), dtype=np.uint16)
    assert not enhancer.overlaps
    np.testing.assert_array_equal(enhancer.enhance_async(frame)().full, enhancer.enhance(frame))


def test_raw_view_follows_the_camera_while_the_model_is_slow(
    core: SimulatedCore, enhancer: Enhancer
) -> None:
    pipeline = LivePipeline(core, SlowEnhancer(enhancer, 0.5))  # type: ignore[arg-type]
    pipeline.start()
    wait_for(pipeline, 3)
    first = pipeline.latest_raw()
    core.setXYPosition(300.0, 200.0)  # a stage move shows in the raw view at once
    end = time.monotonic() + 5
    moved = None
    while time.monotonic() < end:
        moved = pipeline.latest_raw()
        if moved is not None and moved.meta["x_um"] == pytest.approx(300.0):
            break
        time.sleep(0.005)
    enhanced = pipeline.latest()
    stats = pipeline.stop()
    assert first is not None
    assert moved is not None
    assert moved.meta["x_um"] == pytest.approx(300.0)
    assert moved.index > first.index
    assert moved.enhanced is None
    assert moved.raw.shape == (48, 64, 3)
    # the enhanced frame lags: at most a couple of 0.5 s frames done while many arrived
    assert enhanced is None or enhanced.index < moved.index
    assert stats.frames_enhanced < stats.frames_in


def test_view_output_without_full_frames(core: SimulatedCore, enhancer: Enhancer) -> None:
    pipeline = LivePipeline(core, enhancer, full_output=False)
    pipeline.set_view(ViewRequest(0, 0, 64, 48, 40))
    pipeline.start()
    wait_for(pipeline, 5, enhanced=2)
    frame = pipeline.latest()
    pipeline.stop()
    assert frame is not None
    assert frame.enhanced is None  # the full frame stayed on the device
    assert frame.window == ViewWindow(0, 120, 0, 160, 4)
    assert frame.view is not None
    assert frame.view.shape == (30, 40, 3)
    assert frame.view.dtype == np.uint16  # cast on the device to the camera's dtype
    full = enhancer.enhance(frame.raw)
    expect = full.reshape(30, 4, 40, 4, 3).mean(axis=(1, 3))
    assert np.abs(frame.view.astype(np.float32) - np.clip(expect, 0, 65535)).max() <= 1.0


def test_enhancement_pauses_while_the_objective_does_not_match_the_model(
    core: SimulatedCore, enhancer: Enhancer
) -> None:
    config = enhancer.config.model_copy(update={"input_pixel_size_um": 0.185})
    matched = Enhancer(enhancer.net, config, device="cpu")
    pipeline = LivePipeline(core, matched)
    pipeline.start()
    wait_for(pipeline, 3, enhanced=2)
    assert pipeline.stats().paused is None
    core.setConfig("Objective", "100x")
    core.waitForConfig("Objective", "100x")
    end = time.monotonic() + 10
    while pipeline.stats().paused is None and time.monotonic() < end:
        time.sleep(0.01)
    paused = pipeline.stats()
    time.sleep(0.2)
    during = pipeline.stats()
    latest = pipeline.latest()
    core.setConfig("Objective", "40x")
    core.waitForConfig("Objective", "40x")
    wait_for(pipeline, during.frames_in + 3, enhanced=during.frames_enhanced + 2)
    resumed = pipeline.stats()
    pipeline.stop()
    assert paused.paused is not None
    assert "0.074" in paused.paused
    assert latest is not None
    assert latest.enhanced is None
    assert latest.meta["pixel_size_um"] == pytest.approx(0.074)
    assert during.frames_enhanced <= paused.frames_enhanced + 1  # at most the frame in flight
    assert resumed.paused is None
    assert resumed.frames_enhanced >= during.frames_enhanced + 2
    unchecked = LivePipeline(core, matched, check_pixel_size=False)
    core.setConfig("Objective", "100x")
    unchecked.start()
    wait_for(unchecked, 3, enhanced=2)
    forced = unchecked.stop()
    assert forced.paused is None
    assert forced.frames_enhanced >= 2


def skip_every_other_frame(core: SimulatedCore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the core lose frames the way an overwritten circular buffer does."""
    pop = core.popNextImageAndMD

    def lossy() -> tuple[np.ndarray, object]:
        end = time.monotonic() + 0.2
        while core.getRemainingImageCount() < 2 and time.monotonic() < end:
            time.sleep(0.001)
        if core.getRemainingImageCount() >= 2:
            pop()
        return pop()

    monkeypatch.setattr(core, "popNextImageAndMD", lossy)


def test_frames_lost_in_the_core_buffer_are_counted_as_dropped(
    core: SimulatedCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    skip_every_other_frame(core, monkeypatch)
    pipeline = LivePipeline(core, None)
    pipeline.start()
    wait_for(pipeline, 10)
    stats = pipeline.stop()
    assert stats.dropped >= stats.frames_in // 3 > 0


def test_frames_lost_in_the_core_buffer_fail_a_recording(
    core: SimulatedCore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    skip_every_other_frame(core, monkeypatch)
    pipeline = LivePipeline(core, None, record_dir=tmp_path)
    pipeline.start()
    end = time.monotonic() + 20
    while pipeline.running and time.monotonic() < end:
        time.sleep(0.01)
    with pytest.raises(RecordingOverflowError, match="circular buffer overwrote 1 frame"):
        pipeline.stop()


def test_camera_failure_stops_the_run_and_is_reported(
    core: SimulatedCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> tuple[np.ndarray, object]:
        raise RuntimeError("camera cable unplugged")

    monkeypatch.setattr(core, "popNextImageAndMD", broken)
    before = ours()
    pipeline = LivePipeline(core, None)
    pipeline.start()
    end = time.monotonic() + 10
    while pipeline.running and time.monotonic() < end:
        time.sleep(0.01)
    assert not pipeline.running
    with pytest.raises(HardwareError, match="camera cable unplugged"):
        pipeline.stop()
    assert ours() == before
    assert not core.isSequenceRunning()


def test_a_failed_start_leaves_no_thread_behind(
    core: SimulatedCore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "getPixelSizeUm", lambda *a: 0.0)
    before = ours()
    pipeline = LivePipeline(core, None, record_dir=tmp_path)
    with pytest.raises(InputError, match="pixel size 0"):
        pipeline.start()
    assert ours() == before
    assert not core.isSequenceRunning()
    with pytest.raises(InputError, match="recording directory"):
        LivePipeline(core, None, save_enhanced=True)


def test_replay_source_paces_frames_and_counts_blocking_submits() -> None:
    frames = [np.full((4, 4, 3), i, np.uint16) for i in range(3)]
    seen: list[int] = []

    def submit(raw: np.ndarray, meta: dict[str, Any]) -> None:
        seen.append(int(raw[0, 0, 0]))
        if len(seen) == 5:
            time.sleep(0.1)  # one submit holds the "camera" for 5 frame periods

    source = ReplaySource(frames, 50.0, submit, {"pixel_size_um": 0.185})
    source.start()
    time.sleep(0.6)
    assert source.stop()
    assert source.error is None
    assert 20 <= source.sent <= 32  # ~50 fps, catching up after the slow submit
    assert seen[:6] == [0, 1, 2, 0, 1, 2]
    assert source.blocked == 1
    assert source.max_submit_ms >= 100
    with pytest.raises(ValueError, match="frame rate"):
        ReplaySource(frames, 0.0, submit, {})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_pipeline_keeps_up_with_a_fast_replayed_camera(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = DeepMicroscopyNet(NetworkConfig(base_channels=4, num_blocks=1, alpha=2))
    config = ModelConfig(network=net.config, normalisation=Normalisation.identity(3, 4095.0))
    enhancer = Enhancer(net, config, device="cuda", cuda_graphs=True)
    core = make_core(seed=0, sensor=(256, 256))
    pipeline = LivePipeline(
        core, enhancer, camera=False, full_output=False, record_dir=tmp_path / "rec"
    )
    pipeline.set_view(ViewRequest(0, 0, 256, 256, 128))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 4096, (256, 256, 3), dtype=np.uint16) for _ in range(4)]
    meta = {"x_um": 0.0, "y_um": 0.0, "z_um": 0.0, "objective": "40x", "pixel_size_um": 0.185}
    pipeline.start()
    source = ReplaySource(frames, 200.0, pipeline.submit, meta)
    source.start()
    time.sleep(2.0)
    source.stop()
    frame = pipeline.latest()
    stats = pipeline.stop(timeout=30.0)
    assert source.blocked == 0
    assert stats.frames_in == source.sent >= 300
    assert stats.frames_enhanced >= 0.5 * stats.frames_in
    assert stats.recorded == source.sent
    assert len(list((tmp_path / "rec" / "raw").glob("*.ome.tif"))) == source.sent
    assert frame is not None
    assert frame.view is not None
    assert frame.view.shape == (128, 128, 3)
