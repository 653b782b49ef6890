"""Live mode: camera frames -> latest-frame slot -> inference worker -> display/recording.

Threads: the source's reader (pops camera frames; never blocks), the inference worker (enhances
the newest frame; older unprocessed frames are dropped and counted) and, when recording, the
writer (saves every raw frame; a full queue stops the run with an error, never a silent drop).

Back-pressure: the display drops (it polls :meth:`LivePipeline.latest_raw` for the newest camera
frame at its own rate and :meth:`LivePipeline.latest` for the newest enhanced one); the
recorder never drops. The display says what it shows (:meth:`LivePipeline.set_view`) so that the
device reduces the enhanced frame to the view's size and only that crosses to the host; the
full-resolution enhanced frame is downloaded only when asked for (``full_output``) or recorded.
Frames whose pixel size does not match the model's input pixel size are not enhanced (the
reason is in :attr:`LiveStats.paused`) until the optics match again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pymmcore_plus import CMMCorePlus

from deepscope.errors import DeepscopeError, HardwareError, InputError
from deepscope.framemeta import FrameMeta, FrameMetaReader
from deepscope.imaging import to_raw_dtype
from live.enhancer import FrameEnhancer
from live.frames import LiveFrame, LiveStats, percentiles, rate
from live.recorder import Recorder, RecordingOverflowError, RecordItem
from live.sources import CoreSequenceSource, acquisition_hook

if TYPE_CHECKING:
    from model.inference.engine import Output
    from model.inference.view import ViewRequest

log = logging.getLogger("deepscope.live")

#: A frame waiting for the worker: index, raw pixels, arrival time, device meta.
Job = tuple[int, np.ndarray, float, FrameMeta]

#: Frames kept for the rate and latency statistics (a sliding window).
STATS_WINDOW = 10_000


def record_queue_frames(core: CMMCorePlus, budget_mb: float) -> int:
    """Camera frames that fit in *budget_mb* of recording queue (at least 4).

    A frame is width x height x ``getBytesPerPixel()``, which already counts every component
    of an RGB camera (Micro-Manager's RGB64: 8 bytes for 4 x 16 bit).
    """
    frame_bytes = core.getImageWidth() * core.getImageHeight() * max(1, core.getBytesPerPixel())
    return max(4, int(budget_mb * 2**20 // max(1, frame_bytes)))


class LivePipeline:
    """Enhance every new camera frame without ever holding up the camera.

    Parameters
    ----------
    core
        The Micro-Manager core whose camera runs a continuous sequence acquisition.
    enhancer
        The model to apply, or None to pass raw frames through.
    record_dir
        Save every raw frame there (``raw/*.ome.tif`` + ``frames.jsonl``).
    save_enhanced
        Also save the enhanced frames (``enhanced/*.ome.tif``); needs *record_dir*.
    self_feed
        Enhance in self-feeding mode (see :meth:`model.inference.engine.Enhancer.enhance`).
    camera
        Start the core's continuous sequence acquisition; False when frames come from
        :meth:`acquisition_hook` of a pycromanager ``Acquisition`` (or :meth:`submit`).
    record_budget_mb
        Memory the recording queue may hold before the run fails with
        :class:`~live.recorder.RecordingOverflowError`.
    full_output
        Download every enhanced frame at full resolution (``LiveFrame.enhanced``); False when a
        display's view (:meth:`set_view`) is all that is needed.
    check_pixel_size
        Pause enhancement while the camera's pixel size differs from the model's input pixel
        size by more than 2 % (e.g. after switching to another objective).
    """

    def __init__(
        self,
        core: CMMCorePlus,
        enhancer: FrameEnhancer | None,
        *,
        record_dir: Path | None = None,
        save_enhanced: bool = False,
        self_feed: bool = False,
        camera: bool = True,
        record_budget_mb: float = 1024.0,
        full_output: bool = True,
        check_pixel_size: bool = True,
    ) -> None:
        if save_enhanced and record_dir is None:
            raise InputError("saving enhanced frames needs a recording directory (--record DIR)")
        if record_budget_mb <= 0:
            raise InputError(f"record_budget_mb={record_budget_mb} must be positive")
        self.core = core
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self.save_enhanced = save_enhanced
        self.record_budget_mb = record_budget_mb
        self._enhancer = enhancer
        self._self_feed = self_feed
        self._use_camera = camera
        self.full_output = full_output
        self.check_pixel_size = check_pixel_size
        self._view: ViewRequest | None = None
        self._paused: str | None = None
        self._latest_raw: LiveFrame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._pending: Job | None = None
        self._latest: LiveFrame | None = None
        self._frames_in = 0
        self._frames_enhanced = 0
        self._dropped = 0
        self._arrivals: deque[float] = deque(maxlen=STATS_WINDOW)
        self._readies: deque[float] = deque(maxlen=STATS_WINDOW)
        self._latencies_ms: deque[float] = deque(maxlen=STATS_WINDOW)
        self._error: BaseException | None = None
        self._t0 = 0.0
        self._started = False
        self._source: CoreSequenceSource | None = None
        self._recorder: Recorder | None = None
        self._worker = threading.Thread(
            target=self._work, name="deepscope-live-inference", daemon=True
        )
        self.read_meta = FrameMetaReader(core)

    # ----------------------------------------------------------------- control

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop` while no error stopped the run."""
        return self._started and not self._stop.is_set()

    @property
    def error(self) -> BaseException | None:
        """What stopped the run early (recording overflow, camera or inference failure)."""
        return self._error

    def start(self) -> None:
        """Start recording (if asked), the inference worker and the camera."""
        if self._started:
            raise InputError("this live pipeline was already started; create a new one")
        self._started = True
        self._t0 = time.perf_counter()
        try:
            if self.record_dir is not None:
                self._recorder = self._make_recorder(self.record_dir)
                self._recorder.start()
            self._worker.start()
            if self._use_camera:
                self._source = CoreSequenceSource(
                    self.core, self.submit, on_lost=self._lost, on_error=self._fail
                )
                self._source.start()
        except BaseException:
            self._stop.set()  # take down what did start, then report the cause
            with self._cond:
                self._cond.notify_all()
            if self._worker.is_alive():
                self._worker.join()
            if self._recorder is not None:
                self._recorder.close(timeout=5.0)
            raise
        log.info("live mode started (model: %s)", self._enhancer is not None)

    def stop(self, timeout: float = 5.0) -> LiveStats:
        """Stop the camera and every thread, save what is queued, and return the statistics.

        Raises the error that stopped the run early, if any, after all threads are joined.
        """
        if not self._started:
            return self.stats()
        hung = []
        if self._source is not None and not self._source.stop(timeout):
            hung.append("reader")
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._worker.is_alive():
            self._worker.join(timeout)
            if self._worker.is_alive():
                hung.append("inference")
        if self._recorder is not None and not self._recorder.close(timeout):
            hung.append("writer")
        stats = self.stats()
        log.info("live mode stopped: %s", stats.as_dict())
        if hung:
            raise HardwareError(f"live thread(s) {', '.join(hung)} did not stop within {timeout} s")
        error = self._error or (self._recorder.error if self._recorder is not None else None)
        if error is not None:
            if isinstance(error, DeepscopeError):
                raise error
            raise HardwareError(f"live mode failed: {type(error).__name__}: {error}") from error
        return stats

    def set_enhancer(self, enhancer: FrameEnhancer | None) -> None:
        """Use another model (or none) from the next frame on."""
        with self._cond:
            self._enhancer = enhancer

    def set_self_feed(self, self_feed: bool) -> None:
        """Switch self-feeding on or off from the next frame on."""
        with self._cond:
            self._self_feed = self_feed

    def set_view(self, view: ViewRequest | None) -> None:
        """What the display shows (raw pixels, screen size); None: no view-sized output."""
        with self._cond:
            self._view = view

    def acquisition_hook(
        self,
    ) -> Callable[[np.ndarray, dict[str, Any]], tuple[np.ndarray, dict[str, Any]]]:
        """An ``image_process_fn`` that feeds a pycromanager ``Acquisition`` into this pipeline.

        Use with ``camera=False``; start the pipeline before the acquisition.
        """
        return acquisition_hook(self.submit, self.read_meta)

    # ------------------------------------------------------------------- data

    def latest(self) -> LiveFrame | None:
        """The most recently processed frame (raw + enhanced), for display."""
        with self._cond:
            return self._latest

    def latest_raw(self) -> LiveFrame | None:
        """The newest camera frame (not enhanced), as soon as it arrived: the raw view's feed."""
        with self._cond:
            return self._latest_raw

    def stats(self) -> LiveStats:
        """A snapshot of counts, rates and latency percentiles."""
        with self._cond:
            p50, p95, p99 = percentiles(list(self._latencies_ms))
            return LiveStats(
                frames_in=self._frames_in,
                frames_enhanced=self._frames_enhanced,
                dropped=self._dropped,
                recorded=self._recorder.count("raw") if self._recorder is not None else 0,
                camera_fps=rate(list(self._arrivals)),
                inference_fps=rate(list(self._readies)),
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                latency_p99_ms=p99,
                paused=self._paused,
            )

    def submit(self, raw: np.ndarray, meta: FrameMeta) -> None:
        """Hand one camera frame to the pipeline; returns at once (called by the sources).

        Raises :class:`~live.recorder.RecordingOverflowError` (and stops the run) when the
        recording queue is full.
        """
        now = time.perf_counter()
        with self._cond:
            if self._stop.is_set():
                return
            index = self._frames_in
            self._frames_in += 1
            self._arrivals.append(now)
            if self._pending is not None:
                self._dropped += 1
            self._pending = (index, raw, now, meta)
            self._latest_raw = LiveFrame(index, raw, None, now, None, meta)
            self._cond.notify()
        if self._recorder is not None:
            try:
                self._recorder.put(RecordItem("raw", index, raw, meta, now - self._t0))
            except RecordingOverflowError as exc:
                self._fail(exc)
                raise

    # ---------------------------------------------------------------- threads

    def _lost(self, n: int) -> None:
        """The core's buffer overwrote *n* frames: dropped for display, fatal when recording."""
        with self._cond:
            self._frames_in += n
            self._dropped += n
        if self._recorder is not None:
            self._fail(
                RecordingOverflowError(
                    f"the camera's circular buffer overwrote {n} frame(s) before they were "
                    "read; enlarge it (setCircularBufferMemoryFootprint) or lower the frame rate"
                )
            )

    def _make_recorder(self, directory: Path) -> Recorder:
        core = self.core
        px = core.getPixelSizeUm()
        if px <= 0:
            raise InputError(
                "the core reports pixel size 0; define a pixel size configuration to record"
            )
        return Recorder(directory, max_queued=record_queue_frames(core, self.record_budget_mb))

    def _fail(self, exc: BaseException) -> None:
        log.error("live mode stopping: %s", exc)
        with self._cond:
            if self._error is None:
                self._error = exc
            self._stop.set()
            self._cond.notify_all()
        if self._use_camera and self.core.isSequenceRunning():
            self.core.stopSequenceAcquisition()

    def _next(
        self, wait: bool
    ) -> tuple[Job, FrameEnhancer | None, bool, ViewRequest | None] | None:
        """The newest unprocessed frame with the settings to use; None when stopping.

        Without *wait*, also None when no frame is pending.
        """
        with self._cond:
            while not self._stop.is_set():
                job, self._pending = self._pending, None
                if job is not None:
                    return job, self._enhancer, self._self_feed, self._view
                if not wait:
                    return None
                self._cond.wait(0.1)
            return None

    def _pause_reason(self, enhancer: FrameEnhancer, meta: FrameMeta) -> str | None:
        """Why this frame is not enhanced (optics and model differ), logged when it changes."""
        reason = (
            enhancer.pixel_size_mismatch(meta.get("pixel_size_um"))
            if self.check_pixel_size
            else None
        )
        with self._cond:
            changed, self._paused = reason != self._paused, reason
        if changed:
            if reason is None:
                log.info("enhancement resumed: the pixel size matches the model again")
            else:
                log.warning("enhancement paused: %s", reason)
        return reason

    def _work(self) -> None:
        # On CUDA the next frame is started before the previous one is collected, so its upload
        # and compute overlap the previous download; on the CPU each frame completes in turn.
        inflight: tuple[Job, FrameEnhancer, Callable[[], Output]] | None = None
        try:
            while True:
                got = self._next(wait=inflight is None)
                if got is None:
                    if inflight is None:
                        return  # stopping
                    self._collect(*inflight)
                    inflight = None
                    continue
                job, enhancer, self_feed, view = got
                if enhancer is None or self._pause_reason(enhancer, job[3]) is not None:
                    if inflight is not None:
                        self._collect(*inflight)
                        inflight = None
                    self._publish(job, None, None)
                    continue
                raw = job[1]
                record = self.save_enhanced and self._recorder is not None
                # recorded-only frames are cast to the camera's dtype on the device
                cast = not self.full_output and raw.dtype in (np.uint8, np.uint16)
                collect = enhancer.enhance_async(
                    raw,
                    self_feed=self_feed,
                    full=self.full_output or record,
                    view=view,
                    dtype=raw.dtype if cast else np.float32,
                )
                if inflight is not None:
                    self._collect(*inflight)
                    inflight = None
                if enhancer.overlaps:
                    inflight = (job, enhancer, collect)
                else:
                    self._collect(job, enhancer, collect)
        except Exception as exc:  # out of GPU memory, recording overflow: stop loudly
            self._fail(exc)

    def _collect(self, job: Job, enhancer: FrameEnhancer, collect: Callable[[], Output]) -> None:
        self._publish(job, collect(), enhancer)

    def _publish(self, job: Job, out: Output | None, enhancer: FrameEnhancer | None) -> None:
        index, raw, arrival, meta = job
        ready = time.perf_counter() if out is not None else None
        enhanced = out.full if out is not None and self.full_output else None
        frame = LiveFrame(
            index,
            raw,
            enhanced,
            arrival,
            ready,
            meta,
            view=out.view if out is not None else None,
            window=out.window if out is not None else None,
        )
        with self._cond:
            self._latest = frame
            if ready is not None:
                self._frames_enhanced += 1
                self._readies.append(ready)
                self._latencies_ms.append(1e3 * (ready - arrival))
        if out is None or out.full is None or enhancer is None or not self.save_enhanced:
            return
        if self._recorder is not None:
            px = meta["pixel_size_um"] / enhancer.scale
            item = RecordItem(
                "enhanced",
                index,
                to_raw_dtype(out.full, raw.dtype),
                {**meta, "pixel_size_um": px},
                arrival - self._t0,
            )
            self._recorder.put(item, block=True)
