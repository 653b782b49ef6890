"""Live-mode controller: owns the live pipeline, polls it on a timer, drives the stage.

No drawing happens here; the live panel connects to the signals. All slots run on the GUI
thread; the pipeline's threads are reached only through ``latest_raw()``, ``latest()``,
``stats()`` and ``set_view()``. Each poll hands the newest camera frame to the raw view
(``raw_ready``, at display rate whatever the network does) and, when a new one is ready, the
newest enhanced frame to the enhanced view (``enhanced_ready``, at the network's rate). The
enhanced view asks for what it shows (:meth:`LiveController.set_view`), so only a view-sized
image comes back from the device; full-resolution enhancement is computed only for saving.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from deepscope.errors import InputError
from deepscope.framemeta import FrameMeta, FrameMetaReader, image_meta
from deepscope.ometiff import write_ome_tiff
from gui.measure import stage_step_um
from gui.recording import Recording
from gui.worker import BackgroundTask
from model.inference.view import ViewRequest

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

    from live.frames import LiveFrame
    from live.pipeline import LivePipeline
    from model.inference.engine import Enhancer

log = logging.getLogger("deepscope.gui")

#: How long stopping live mode waits for the frame being enhanced.
STOP_TIMEOUT_S = 120.0

OBJECTIVE_GROUP = "Objective"

#: Shortest interval between two statistics updates while live.
STATS_INTERVAL_S = 0.25

#: The view asked for before the panel knows its geometry: the whole frame, 1024 px on screen.
WHOLE_FRAME = ViewRequest(0.0, 0.0, 1e9, 1e9, 1024)


def camera_image(core: CMMCorePlus) -> np.ndarray:
    """The last snapped image as ``(y, x, c)`` (RGB without alpha, or one channel)."""
    img = np.asarray(core.getImage())
    if img.ndim == 2:
        return img[..., None]
    return img[..., :3]


class LiveController(QObject):
    """Start/stop live enhancement, snap, save, load models and move the stage.

    Parameters
    ----------
    core
        The Micro-Manager core (simulated or real).
    enhancer
        Model applied to each frame, or None for a raw-only preview.
    poll_interval_ms
        How often the latest frame and statistics are fetched from the pipeline.
    """

    raw_ready = Signal(object)  # LiveFrame: the newest camera frame (raw view)
    enhanced_ready = Signal(object)  # LiveFrame: the newest enhanced frame (enhanced view)
    paused_changed = Signal(object)  # str | None: why frames are not enhanced now
    stats_changed = Signal(object)  # LiveStats
    stage_changed = Signal(object)  # FrameMeta: where the microscope is
    running_changed = Signal(bool)
    model_changed = Signal(object)  # Path | None
    record_status = Signal(object)  # RecordStatus: while recording, and once when it ends
    failed = Signal(str)  # a message for the user

    def __init__(
        self,
        core: CMMCorePlus,
        enhancer: Enhancer | None = None,
        *,
        model_dir: Path | None = None,
        poll_interval_ms: int = 30,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.core = core
        self.enhancer = enhancer
        self.model_dir = model_dir
        self.self_feed = False
        self.current: LiveFrame | None = None  # the newest raw frame shown (what is saved)
        self.enhanced: LiveFrame | None = None  # the newest enhanced frame shown
        self.paused: str | None = None
        self.view: ViewRequest = WHOLE_FRAME
        self._pipeline: LivePipeline | None = None
        self._recording: Recording | None = None
        self._last_raw = -1
        self._last_enhanced = -1
        self._last_stage: FrameMeta | None = None
        self._last_stats_s = 0.0
        self._snap_task: BackgroundTask | None = None
        self._snap_count = 0
        self._read_meta = FrameMetaReader(core)  # the same read-back live frames carry
        self._timer = QTimer(self)
        self._timer.setInterval(poll_interval_ms)
        self._timer.timeout.connect(self.poll)

    # -- state -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True from :meth:`start` to :meth:`stop` (which the poll calls when the run failed)."""
        return self._pipeline is not None

    @property
    def recording(self) -> Path | None:
        """The directory being recorded into, or None when not recording."""
        return None if self._recording is None else self._recording.directory

    @property
    def scale(self) -> float | None:
        """Pixel-density ratio of the loaded model (enhanced/raw), or None without a model."""
        return None if self.enhancer is None else float(self.enhancer.scale)

    def read_stage(self) -> FrameMeta:
        """Read position, objective, pixel size and exposure from the core (NaN: no stage)."""
        return self._read_meta()

    # -- live --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start live mode (no-op when running)."""
        if not self.running:
            self._start_pipeline(None)

    def _start_pipeline(self, recording: Recording | None) -> LivePipeline:
        from live.pipeline import LivePipeline

        pipeline = LivePipeline(
            self.core,
            self.enhancer,
            record_dir=None if recording is None else recording.directory,
            self_feed=self.self_feed,
            full_output=False,
        )
        pipeline.set_view(self.view)
        pipeline.start()
        self._pipeline = pipeline
        self._recording = recording
        self._last_raw = self._last_enhanced = -1
        self._last_stage = None
        self._timer.start()
        self.running_changed.emit(True)
        return pipeline

    def stop(self) -> None:
        """Stop live mode (and a recording) and join the pipeline's threads (no-op when stopped).

        A recording's writer saves every queued frame before this returns; what ended a
        recording early goes to :attr:`record_status`, not to :attr:`failed`.
        """
        pipeline, self._pipeline = self._pipeline, None
        recording, self._recording = self._recording, None
        self._timer.stop()
        if pipeline is None:
            return
        error = None
        try:
            # wait for a frame already in the network (a 2048x2048 frame takes tens of seconds
            # on a CPU): a thread abandoned inside torch aborts the process at exit
            stats = pipeline.stop(timeout=STOP_TIMEOUT_S)
        except Exception as exc:  # what stopped the run (camera, model, disk): tell the user
            # the pipeline keeps this error; drop the traceback that now reaches into GUI frames
            exc.__traceback__ = None
            error = str(exc)
            stats = pipeline.stats()
            if recording is None:
                self.failed.emit(f"live mode stopped: {exc}")
        self.stats_changed.emit(stats)
        if recording is not None:
            recording.close()
            self.record_status.emit(recording.status(stats, done=True, error=error))
        self.running_changed.emit(False)

    def start_recording(self, parent: str | Path) -> Path:
        """Record every raw frame into a new directory under *parent* (live mode restarts).

        Returns the new directory. Raises :class:`~deepscope.errors.InputError` when no
        directory can be made there (live mode is then untouched) or when the camera cannot
        record (e.g. no pixel size; live mode is then stopped).
        """
        if self._recording is not None:
            return self._recording.directory
        recording = Recording(Path(parent))
        self.stop()
        try:
            pipeline = self._start_pipeline(recording)
        except BaseException:
            recording.close()
            raise
        self.record_status.emit(recording.status(pipeline.stats(), done=False))
        return recording.directory

    def stop_recording(self) -> None:
        """End the recording (every queued frame is written) and go on in live mode."""
        if self._recording is None:
            return
        self.stop()
        self.start()

    def _refuse_while_recording(self, what: str) -> None:
        if self._recording is not None:
            raise InputError(f"stop recording before {what}")

    def toggle(self) -> None:
        """Start when stopped, stop when running."""
        if self.running:
            self.stop()
        else:
            self.start()

    def poll(self) -> None:
        """Hand the newest raw and enhanced frames and the statistics on (timer slot)."""
        pipeline = self._pipeline
        if pipeline is None:
            return
        if pipeline.error is not None:
            self.stop()
            return
        raw = pipeline.latest_raw()
        if raw is not None and raw.index != self._last_raw:
            self._last_raw = raw.index
            self.current = raw
            self.raw_ready.emit(raw)
            stage = raw.meta
            if stage != self._last_stage:
                self._last_stage = stage
                self.stage_changed.emit(stage)
        done = pipeline.latest()
        if done is not None and done.ready_s is not None and done.index != self._last_enhanced:
            self._last_enhanced = done.index
            self.enhanced = done
            self.enhanced_ready.emit(done)
        stats = pipeline.stats()
        self._set_paused(stats.paused)
        now = time.perf_counter()
        if now - self._last_stats_s >= STATS_INTERVAL_S:  # read-outs need not follow each frame
            self._last_stats_s = now
            self.stats_changed.emit(stats)
            if self._recording is not None:
                self.record_status.emit(self._recording.status(stats, done=False))

    def _set_paused(self, reason: str | None) -> None:
        if reason != self.paused:
            self.paused = reason
            self.paused_changed.emit(reason)

    def set_view(self, view: ViewRequest) -> None:
        """What the enhanced view shows (raw pixels and screen size), from the next frame on."""
        self.view = view
        if self._pipeline is not None:
            self._pipeline.set_view(view)

    # -- snap --------------------------------------------------------------------------------
    def snap(self) -> None:
        """Stop live mode and take one frame (enhanced when a model is loaded) in a thread."""
        if self._snap_task is not None and self._snap_task.running:
            return
        self.stop()
        task = BackgroundTask(self._snap_frame, name="deepscope-gui-snap", parent=self)
        task.finished.connect(self._on_snap)
        task.failed.connect(lambda exc: self.failed.emit(f"snap failed: {exc}"))
        self._snap_task = task
        task.start()

    def _snap_frame(self) -> LiveFrame:
        from live.frames import LiveFrame

        self.core.snapImage()
        raw = camera_image(self.core)
        arrival = time.perf_counter()
        meta = self._read_meta()
        enhancer = self.enhancer
        if enhancer is not None and enhancer.pixel_size_mismatch(meta["pixel_size_um"]):
            enhancer = None  # the raw frame only, as in live mode
        enhanced = None if enhancer is None else enhancer.enhance(raw, self_feed=self.self_feed)
        ready = None if enhanced is None else time.perf_counter()
        self._snap_count += 1
        return LiveFrame(
            index=-self._snap_count,
            raw=raw,
            enhanced=enhanced,
            arrival_s=arrival,
            ready_s=ready,
            meta=meta,
        )

    def _on_snap(self, frame: LiveFrame) -> None:
        self.current = frame
        self.raw_ready.emit(frame)
        self.enhanced = frame if frame.enhanced is not None else None
        self.enhanced_ready.emit(frame)
        enhancer = self.enhancer
        reason = (
            None if enhancer is None else enhancer.pixel_size_mismatch(frame.meta["pixel_size_um"])
        )
        self._set_paused(reason)
        self.stage_changed.emit(frame.meta)

    # -- saving ------------------------------------------------------------------------------
    def save_current(self, directory: str | Path) -> list[Path]:
        """Write the current raw frame (and its enhancement) as OME-TIFFs into *directory*.

        Live mode keeps enhanced frames on the device; the full-resolution enhancement of the
        saved raw frame is computed here (none while enhancement is paused). Raises
        :class:`~deepscope.errors.InputError` when there is no frame yet.
        """
        frame = self.current
        if frame is None:
            raise InputError("no frame to save yet; start live mode or snap first")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        meta = frame.meta
        px = float(meta.get("pixel_size_um") or 0.0)
        if not px > 0:
            raise InputError(f"pixel size {px} um of the current frame is not positive")
        raw_meta = image_meta(meta, name="raw", pixel_size_um=px, acquired_at=datetime.now(UTC))
        paths = [write_ome_tiff(out / f"live_{stamp}_raw.ome.tif", frame.raw, raw_meta)]
        enhanced = frame.enhanced
        enhancer = self.enhancer
        if enhanced is None and enhancer is not None and not enhancer.pixel_size_mismatch(px):
            enhanced = enhancer.enhance(frame.raw, self_feed=self.self_feed)
        if enhanced is not None and self.scale is not None:
            enhanced_meta = raw_meta.model_copy(
                update={
                    "pixel_size_um": px / self.scale,
                    "name": "enhanced",
                    "annotations": {"model": str(self.model_dir or ""), "scale": str(self.scale)},
                }
            )
            enhanced_path = out / f"live_{stamp}_enhanced.ome.tif"
            paths.append(write_ome_tiff(enhanced_path, enhanced, enhanced_meta))
        log.info("saved %s", ", ".join(str(p) for p in paths))
        return paths

    # -- model, settings, stage ------------------------------------------------------------
    def load_model(self, model_dir: str | Path) -> None:
        """Load a model directory and use it from the next frame on.

        Raises :class:`~deepscope.errors.InputError` for a directory that holds no valid model.
        """
        from model.inference.engine import Enhancer

        enhancer = Enhancer.from_dir(Path(model_dir), device="auto")
        self.set_enhancer(enhancer, Path(model_dir))

    def set_enhancer(self, enhancer: Enhancer | None, model_dir: Path | None = None) -> None:
        """Use *enhancer* (None: raw preview only) from the next frame on."""
        self.enhancer = enhancer
        self.model_dir = model_dir if enhancer is not None else None
        if self._pipeline is not None:
            self._pipeline.set_enhancer(enhancer)
        self.model_changed.emit(self.model_dir)

    def set_self_feed(self, on: bool) -> None:
        """Feed each enhanced frame back into the model (the paper's self-feeding mode)."""
        self.self_feed = bool(on)
        if self._pipeline is not None:
            self._pipeline.set_self_feed(self.self_feed)

    def set_exposure(self, exposure_ms: float) -> None:
        """Set the camera exposure; live mode restarts to apply it."""
        if not exposure_ms > 0:
            raise InputError(f"exposure {exposure_ms} ms must be positive")
        self._refuse_while_recording("changing the exposure")
        was_running = self.running
        self.stop()
        self.core.setExposure(float(exposure_ms))
        if was_running:
            self.start()
        else:
            self.stage_changed.emit(self.read_stage())

    def set_objective(self, name: str) -> None:
        """Switch the objective turret to preset *name*; live mode restarts around the move."""
        self._refuse_while_recording("switching the objective")
        was_running = self.running
        self.stop()
        self.core.setConfig(OBJECTIVE_GROUP, name)
        self.core.waitForConfig(OBJECTIVE_GROUP, name)
        if was_running:
            self.start()
        else:
            stage = self.read_stage()
            if self.enhancer is not None:
                self._set_paused(self.enhancer.pixel_size_mismatch(stage["pixel_size_um"]))
            self.stage_changed.emit(stage)

    def move_xy(self, dx_um: float, dy_um: float) -> None:
        """Move the XY stage by a relative step."""
        self.core.setRelativeXYPosition(float(dx_um), float(dy_um))
        self.core.waitForDevice(self.core.getXYStageDevice())
        if not self.running:
            self.stage_changed.emit(self.read_stage())

    def centre_on(self, x_view: float, y_view: float) -> tuple[float, float]:
        """Move the XY stage so that raw view point (*x_view*, *y_view*) becomes the centre.

        Uses the shown frame's size and pixel size and the core's pixel-size affine (the
        camera's orientation on the stage). Returns the move (um); InputError without a frame
        or pixel size.
        """
        frame = self.current
        if frame is None:
            raise InputError("no frame to click on yet; start live mode or snap first")
        px = float(frame.meta.get("pixel_size_um") or 0.0)
        try:
            affine = tuple(float(v) for v in self.core.getPixelSizeAffine())
            dx, dy = stage_step_um(x_view, y_view, frame.raw.shape, px, affine)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.move_xy(dx, dy)
        return dx, dy

    def move_z(self, dz_um: float) -> None:
        """Move the focus drive by a relative step."""
        self.core.setRelativePosition(float(dz_um))
        self.core.waitForDevice(self.core.getFocusDevice())
        if not self.running:
            self.stage_changed.emit(self.read_stage())

    def shutdown(self) -> None:
        """Stop live mode and wait for a running snap; call before the window closes."""
        self.stop()
        if self._snap_task is not None:
            self._snap_task.join(timeout=10.0)
