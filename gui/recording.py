"""One recording of live frames from the GUI: its dataset directory, its lock and its counts.

The frames themselves go through the live pipeline's lossless recorder
(:class:`live.recorder.Recorder`, as ``deepscope live --record DIR`` does):
``raw/*.ome.tif`` and ``frames.jsonl``. Each recording gets a new directory ``live_<UTC time>``
under the folder the user chose, so a second recording never overwrites the first one's
frames; the directory holds the lock that every deepscope writer takes
(:func:`deepscope.locking.directory_lock`) while the recording runs.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from deepscope.errors import InputError
from deepscope.locking import directory_lock

if TYPE_CHECKING:
    from live.frames import LiveStats


def default_recordings_dir() -> Path:
    """Where recordings go unless the user chooses another folder."""
    return Path.home() / "deepscope-recordings"


@dataclass(frozen=True)
class RecordStatus:
    """What a recording has done so far.

    ``recorded`` frames are on disk; ``waiting`` frames are queued for the disk; ``lost`` frames
    reached the pipeline but will never be written (known once the writer stopped; 0 for a
    recording that ends normally). ``free_bytes`` is the free space where the frames go (None
    when it cannot be read). ``error`` says what ended a recording early.
    """

    directory: Path
    recorded: int
    waiting: int
    lost: int
    free_bytes: int | None
    done: bool
    error: str | None = None


class Recording:
    """A new, locked dataset directory under *parent* for one recording.

    Raises :class:`~deepscope.errors.InputError` when *parent* is not a directory one can create,
    and :class:`~deepscope.errors.LockedError` when another process holds the new directory.
    """

    def __init__(self, parent: Path) -> None:
        parent = Path(parent).expanduser()
        if parent.exists() and not parent.is_dir():
            raise InputError(f"{parent} is an existing file; choose a folder for recordings")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.directory = parent / f"live_{stamp}"
        self._lock = contextlib.ExitStack()
        try:
            self._lock.enter_context(directory_lock(self.directory))
        except OSError as exc:
            raise InputError(f"cannot record into {parent}: {exc.strerror or exc}") from None

    def status(self, stats: LiveStats, *, done: bool, error: str | None = None) -> RecordStatus:
        """The counts of the pipeline recording here; *done*: its writer has stopped."""
        unwritten = max(0, stats.frames_in - stats.recorded)
        try:
            free: int | None = shutil.disk_usage(self.directory).free
        except OSError:
            free = None
        return RecordStatus(
            directory=self.directory,
            recorded=stats.recorded,
            waiting=0 if done else unwritten,
            lost=unwritten if done else 0,
            free_bytes=free,
            done=done,
            error=error,
        )

    def close(self) -> None:
        """Release the directory's lock (the frames stay)."""
        self._lock.close()
