"""Recording of live frames: a bounded queue and a writer thread that saves every frame.

Raw frames are written as ``raw/frame_NNNNNN.ome.tif`` (and enhanced ones, when asked, as
``enhanced/frame_NNNNNN.ome.tif``; their ``meta`` carries the output pixel size), each followed by a
line in ``frames.jsonl``. The queue never drops: when it is full, :meth:`Recorder.put` raises
:class:`RecordingOverflowError` so the caller can stop and say so.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepscope.atomic import append_jsonl
from deepscope.errors import DeepscopeError
from deepscope.framemeta import FrameMeta
from deepscope.ometiff import ImageMeta, PlaneMeta, write_ome_tiff

log = logging.getLogger("deepscope.live")

MANIFEST = "frames.jsonl"


class RecordingOverflowError(DeepscopeError, RuntimeError):
    """The writer fell behind the camera and the recording queue is full."""

    exit_code = 3


@dataclass(frozen=True)
class RecordItem:
    """One image to save: ``kind`` is ``"raw"`` or ``"enhanced"``."""

    kind: str
    index: int
    image: np.ndarray
    meta: FrameMeta
    t_s: float


def image_meta(meta: FrameMeta, t_s: float, pixel_size_um: float) -> ImageMeta:
    """OME metadata for one live frame from the pipeline's per-frame ``meta`` dict."""
    plane = PlaneMeta(
        x_um=float(meta.get("x_um", float("nan"))),
        y_um=float(meta.get("y_um", float("nan"))),
        z_um=float(meta.get("z_um", float("nan"))),
        exposure_ms=meta.get("exposure_ms"),
        t_s=t_s,
    )
    return ImageMeta(
        pixel_size_um=pixel_size_um,
        planes=(plane,),
        objective=meta.get("objective"),
        name="live",
    )


class Recorder:
    """Bounded queue + writer thread for one recording directory.

    Parameters
    ----------
    directory
        Where ``raw/``, ``enhanced/`` and ``frames.jsonl`` go.
    max_queued
        Frames that may wait for the writer before :meth:`put` raises.
    """

    def __init__(self, directory: Path, *, max_queued: int) -> None:
        self.directory = Path(directory)
        self._queue: queue.Queue[RecordItem | None] = queue.Queue(maxsize=max_queued)
        self._thread = threading.Thread(target=self._run, name="deepscope-live-writer", daemon=True)
        self._lock = threading.Lock()
        self.written = {"raw": 0, "enhanced": 0}
        self.error: BaseException | None = None

    def start(self) -> None:
        """Create the directories and start the writer thread."""
        for sub in ("raw", "enhanced"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def put(self, item: RecordItem, *, block: bool = False) -> None:
        """Queue *item*; without *block*, raise :class:`RecordingOverflowError` when full."""
        if self.error is not None:
            raise RecordingOverflowError(f"recording stopped after a write error: {self.error}")
        try:
            self._queue.put(item, block=block, timeout=5.0 if block else None)
        except queue.Full:
            raise RecordingOverflowError(
                f"recording queue full ({self._queue.maxsize} frames waiting for the disk); "
                "lower the frame rate, record to a faster disk or use a smaller ROI"
            ) from None

    def close(self, timeout: float) -> bool:
        """Let the writer save what is queued, then stop it; return True if it stopped."""
        if not self._thread.is_alive():
            return True
        self._queue.put(None)
        self._thread.join(timeout + 0.5 * self._queue.qsize())
        return not self._thread.is_alive()

    def count(self, kind: str) -> int:
        """Frames of *kind* written so far."""
        with self._lock:
            return self.written[kind]

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.error is not None:
                continue  # keep draining so producers never block; the error is reported
            try:
                self._write(item)
            except Exception as exc:  # disk full, permissions: reported by the pipeline
                log.error("live recording failed: %s", exc)
                self.error = exc

    def _write(self, item: RecordItem) -> None:
        px = float(item.meta["pixel_size_um"])
        name = f"frame_{item.index:06d}.ome.tif"
        path = self.directory / item.kind / name
        write_ome_tiff(path, item.image, image_meta(item.meta, item.t_s, px))
        append_jsonl(
            self.directory / MANIFEST,
            {"kind": item.kind, "index": item.index, "file": f"{item.kind}/{name}", **item.meta},
        )
        with self._lock:
            self.written[item.kind] += 1
