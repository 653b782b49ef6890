"""Recording of live frames: a bounded queue and a writer thread that saves every frame.

Raw frames are written as ``raw/frame_NNNNNN.ome.tif`` (and enhanced ones, when asked, as
``enhanced/frame_NNNNNN.ome.tif``; their ``meta`` carries the output pixel size), each followed by a
line in ``frames.jsonl``. The queue never drops: when it is full, :meth:`Recorder.put` raises
:class:`RecordingOverflowError` so the caller can stop and say so.

What survives what: a frame's file gets its final name only once complete, and its manifest
line is written after that, so a killed process leaves every listed frame readable and at most
the frame being written unlisted (its file may be there). Durability against a power cut is a
second thread's work: once a second (:data:`COMMIT_S`) and when the recording ends it fsyncs
the frames written since its last pass, the manifest and the directories; a power cut may lose
the last second or two. The writer
itself never waits for the disk: three fsyncs per frame (each an ext4 journal commit) cost
more than the whole write of a 512x512 RGB frame, and each blocking call hands the GIL away,
which a busy GUI thread may then hold for up to 5 ms (BENCHMARKS.md, live).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepscope.atomic import JsonlAppender, fsync_dir, fsync_file
from deepscope.errors import DeepscopeError
from deepscope.framemeta import FrameMeta, image_meta
from deepscope.ometiff import write_ome_tiff

log = logging.getLogger("deepscope.live")

MANIFEST = "frames.jsonl"
#: Seconds between fsyncs of what was written: what a power cut may lose.
COMMIT_S = 1.0


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


class Recorder:
    """Bounded queue + writer thread (+ a thread that flushes) for one recording directory.

    Parameters
    ----------
    directory
        Where ``raw/``, ``enhanced/`` and ``frames.jsonl`` go.
    max_queued
        Frames that may wait for the writer before :meth:`put` raises.
    """

    _manifest: JsonlAppender  # frames.jsonl, opened by start()

    def __init__(self, directory: Path, *, max_queued: int) -> None:
        self.directory = Path(directory)
        self._queue: queue.Queue[RecordItem | None] = queue.Queue(maxsize=max_queued)
        self._thread = threading.Thread(target=self._run, name="deepscope-live-writer", daemon=True)
        self._syncer = threading.Thread(target=self._sync, name="deepscope-live-sync", daemon=True)
        self._lock = threading.Lock()
        self.written = {"raw": 0, "enhanced": 0}
        self.error: BaseException | None = None
        self._synced = threading.Condition()
        self._writing = True
        self._unsynced: list[Path] = []  # files written since the sync thread's last pass

    def start(self) -> None:
        """Create the directories and start the writer and sync threads."""
        for sub in ("raw", "enhanced"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self._manifest = JsonlAppender(self.directory / MANIFEST)
        self._thread.start()
        self._syncer.start()

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
        """Save what is queued, make it durable, stop both threads; True if they stopped."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout + 0.5 * self._queue.qsize())
        if self._syncer.is_alive():
            self._syncer.join(timeout)
        return not (self._thread.is_alive() or self._syncer.is_alive())

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
        self._manifest.close()
        with self._synced:
            self._writing = False
            self._synced.notify()

    def _write(self, item: RecordItem) -> None:
        px = float(item.meta["pixel_size_um"])
        name = f"frame_{item.index:06d}.ome.tif"
        path = self.directory / item.kind / name
        write_ome_tiff(
            path,
            item.image,
            image_meta(item.meta, name="live", t_s=item.t_s, pixel_size_um=px),
            sync=False,
        )
        record = {"kind": item.kind, "index": item.index, "file": f"{item.kind}/{name}"}
        self._manifest.append({**record, **item.meta})
        with self._lock:
            self.written[item.kind] += 1
            self._unsynced.append(path)

    def _sync(self) -> None:
        """Every :data:`COMMIT_S` and once the writer is done: make what was written durable.

        Off the writer thread, so the writer never waits for the filesystem's journal.
        """
        writing = True
        while writing:
            with self._synced:
                self._synced.wait_for(lambda: not self._writing, timeout=COMMIT_S)
                writing = self._writing
            with self._lock:
                paths, self._unsynced = self._unsynced, []
            if not paths:
                continue
            try:
                self._flush(paths)
            except OSError as exc:  # a full disk may show only now (delayed allocation)
                log.error("live recording could not be made durable: %s", exc)
                self.error = exc
                return

    def _flush(self, paths: list[Path]) -> None:
        """Make *paths* durable (fsync), then the manifest, then the directories' new names.

        Per file, not ``sync(2)``: Windows has no ``sync(2)``, and it would flush every
        filesystem of the machine; from this thread the fsyncs cost the writer nothing
        measurable (BENCHMARKS.md, live).
        """
        for path in paths:
            fsync_file(path)
        fsync_file(self.directory / MANIFEST)
        for sub in ("raw", "enhanced", "."):
            fsync_dir(self.directory / sub)
