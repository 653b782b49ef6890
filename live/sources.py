"""Frame sources fed by Micro-Manager: the camera's continuous sequence and a pycromanager hook.

A source only moves frames: it pops them from the core's circular buffer (or receives them from
an ``Acquisition``) and passes each, with its metadata read back from the devices, to a
``submit(raw, meta)`` callable that returns at once. It never waits on inference or disk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pymmcore_plus import CMMCorePlus

from deepscope.framemeta import FrameMeta, FrameMetaReader, from_tags

log = logging.getLogger("deepscope.live")

Submit = Callable[[np.ndarray, FrameMeta], None]


class CoreSequenceSource:
    """Micro-Manager live mode: continuous sequence acquisition, popped by a reader thread.

    Parameters
    ----------
    core
        A started core with a camera (the simulator's ``UniMMCore`` or a hardware one).
    submit
        Called with ``(raw, meta)`` for every frame, in order; must not block.
    on_lost
        Called with the number of frames the core's circular buffer overwrote before they were
        read (a gap in the ``ImageNumber`` tags).
    on_error
        Called when reading frames fails (the camera is stopped first).
    poll_s
        Sleep between polls of an empty circular buffer.
    """

    def __init__(
        self,
        core: CMMCorePlus,
        submit: Submit,
        *,
        on_lost: Callable[[int], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        poll_s: float = 0.001,
    ) -> None:
        self.core = core
        self.submit = submit
        self.on_lost = on_lost
        self.on_error = on_error
        self.poll_s = poll_s
        self._last_number: int | None = None
        self.read_meta = FrameMetaReader(core)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deepscope-live-reader", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start the camera's continuous sequence and the reader thread."""
        if self.core.isSequenceRunning():
            self.core.stopSequenceAcquisition()
        self.core.startContinuousSequenceAcquisition(0)
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Stop the camera, pass on the frames still buffered, join; True if the thread ended."""
        if self.core.isSequenceRunning():
            self.core.stopSequenceAcquisition()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _check_sequence(self, md: Any) -> None:
        try:
            number = int(md.get("ImageNumber"))
        except (TypeError, ValueError):  # a camera without image numbers
            return
        last, self._last_number = self._last_number, number
        if last is not None and number > last + 1 and self.on_lost is not None:
            self.on_lost(number - last - 1)

    def _run(self) -> None:
        core = self.core
        try:
            while True:
                if core.getRemainingImageCount() > 0:
                    raw, md = core.popNextImageAndMD()
                    self._check_sequence(md)
                    self.submit(raw, self.read_meta())
                elif self._stop.is_set():
                    return
                else:
                    self._stop.wait(self.poll_s)
        except Exception as exc:  # reported through on_error and .error
            self.error = exc
            if core.isSequenceRunning():
                core.stopSequenceAcquisition()
            if self.on_error is not None:
                self.on_error(exc)


class ReplaySource:
    """Replay recorded frames into live mode at a fixed frame rate, as a camera would.

    Frame ``k`` is due at ``start + k / fps``; the thread sleeps until then and calls
    ``submit(frames[k % len(frames)], meta)``. A submit that takes longer than a frame period
    would hold up a real camera: those are counted (``blocked``), with the longest submit time
    (``max_submit_ms``) and the furthest the replay fell behind its schedule (``max_lag_ms``).
    Used to measure live mode at camera rates that no simulated camera reaches.

    Parameters
    ----------
    frames
        The frames to cycle through.
    fps
        Frames per second.
    submit
        Called for each frame; must not block.
    meta
        The frame meta passed with every frame.
    """

    def __init__(
        self, frames: Sequence[np.ndarray], fps: float, submit: Submit, meta: FrameMeta
    ) -> None:
        if not frames or not fps > 0:
            raise ValueError("a replay needs at least one frame and a positive frame rate")
        self.frames = list(frames)
        self.fps = float(fps)
        self.submit = submit
        self.meta = meta
        self.sent = 0
        self.blocked = 0
        self.max_submit_ms = 0.0
        self.max_lag_ms = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deepscope-replay", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start replaying."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop and join; True if the thread ended."""
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        period = 1.0 / self.fps
        start = time.perf_counter()
        try:
            while not self._stop.is_set():
                due = start + self.sent * period
                wait = due - time.perf_counter()
                if wait > 0 and self._stop.wait(wait):
                    return
                t0 = time.perf_counter()
                self.submit(self.frames[self.sent % len(self.frames)], self.meta)
                took = time.perf_counter() - t0
                self.max_submit_ms = max(self.max_submit_ms, 1e3 * took)
                self.max_lag_ms = max(self.max_lag_ms, 1e3 * (t0 - due))
                self.sent += 1
                if took > period:
                    self.blocked += 1
        except Exception as exc:  # reported by the caller through .error
            self.error = exc


def acquisition_hook(
    submit: Submit, read_meta: Callable[[], FrameMeta]
) -> Callable[[np.ndarray, dict[str, Any]], tuple[np.ndarray, dict[str, Any]]]:
    """An ``image_process_fn`` for a pycromanager ``Acquisition`` that feeds live mode.

    Each image goes to *submit* with the positions in its tags (read back from the stages by
    :class:`acquire.pycro_core.PycroCoreAdapter`; the hook may run after the stage moved on),
    falling back to *read_meta* for missing tags. The image is returned unchanged, so the
    acquisition still saves it.
    """

    def hook(image: np.ndarray, metadata: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        submit(np.asarray(image), from_tags(metadata, read_meta))
        return image, metadata

    return hook
