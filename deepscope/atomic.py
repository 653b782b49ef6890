"""Crash-safe file output: write to a temporary name, fsync, then rename.

Nothing that is complete on disk is ever replaced by a partial file: a reader either sees the
old file, or the new complete one. Temporary files carry the ``.partial`` suffix so that a
resumed run can recognise and delete them. A full disk is a :class:`DiskFullError` however it
shows: ``ENOSPC``, a quota, or tifffile's short write (``"N requested and M written"``, which
carries no errno).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deepscope.errors import DiskFullError, InputError

log = logging.getLogger("deepscope")

PARTIAL_SUFFIX = ".partial"
#: free space kept beyond a file's own size (OME-XML, TIFF directories, the manifest line)
FREE_SPACE_MARGIN_BYTES = 256 << 10

_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def is_disk_full(exc: OSError) -> bool:
    """Whether *exc* means the filesystem ran out of space (or quota)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return exc.errno is None and _SHORT_WRITE.search(str(exc)) is not None


def check_free_space(directory: str | os.PathLike[str], nbytes: int) -> None:
    """Raise :class:`DiskFullError` unless *directory* has room for *nbytes* plus a margin."""
    free = shutil.disk_usage(directory).free
    if free < nbytes + FREE_SPACE_MARGIN_BYTES:
        raise DiskFullError(
            f"disk full: {directory} has {free / 1e6:.1f} MB free, the next file needs "
            f"{(nbytes + FREE_SPACE_MARGIN_BYTES) / 1e6:.1f} MB; free space, then rerun "
            "(with --resume for an acquisition); earlier output is intact"
        )


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Make the data of the file at *path* durable."""
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def fsync_dir(directory: Path) -> None:
    """Make the entries of *directory* (renames, deletions) durable."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(
    final: str | os.PathLike[str], *, size_hint: int = 0, sync: bool = True
) -> Iterator[Path]:
    """Yield a temporary path next to *final*; on success move it into place.

    The caller writes the complete file to the yielded path. If the block raises, the
    temporary file is removed and *final* is untouched. With *size_hint* (bytes) the free
    space is checked first; a full disk, found before or during the write, becomes
    :class:`~deepscope.errors.DiskFullError`. The file's data are made durable before the
    rename, and the new name after it; with *sync* False neither is: a killed process still
    leaves the complete file or none, and the caller makes many files durable at once (a live
    recording: a second thread fsyncs its frames once a second).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if size_hint:
        check_free_space(final.parent, size_hint)
    tmp = final.with_name(f".{final.name}.{os.getpid()}{PARTIAL_SUFFIX}")
    try:
        yield tmp
        if sync:
            fsync_file(tmp)
        os.replace(tmp, final)
        if sync:
            fsync_dir(final.parent)
    except DiskFullError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise DiskFullError(
                f"disk full while writing {final} ({exc}); earlier output is intact"
            ) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write *text* to *path* atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write *obj* as indented JSON to *path* atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _end_torn_line(fh: Any, path: str | os.PathLike[str]) -> None:
    """Make the file open in *fh* (``a+b``) end with a complete line before an append.

    A last line without its newline was cut short by a crash or a full disk: if it is still a
    whole JSON document only the newline is added, otherwise the fragment (never a record:
    records count only once their append returned) is cut off.
    """
    size = fh.seek(0, os.SEEK_END)
    if size == 0:
        return
    fh.seek(size - 1)
    if fh.read(1) == b"\n":
        return
    fh.seek(0)
    data = fh.read()
    start = data.rfind(b"\n") + 1
    try:
        json.loads(data[start:])
    except ValueError:
        log.warning("%s: removed a torn last line (%d bytes)", path, size - start)
        fh.truncate(start)
    else:
        fh.write(b"\n")


class JsonlAppender:
    """A JSON-lines file held open for many appends (a live recording's ``frames.jsonl``).

    Opening ends or removes a line that a crash cut short (see :func:`_end_torn_line`), so
    each record starts a line of its own. :meth:`append` writes one line with one ``write``
    call and no fsync: the line survives a killed process, a power cut only once synced.
    A full disk is :class:`~deepscope.errors.DiskFullError`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        with self._disk_full_named():
            self._fh = open(path, "a+b")  # noqa: SIM115 (closed by close())
            _end_torn_line(self._fh, path)

    def append(self, record: dict[str, Any], *, sync: bool = False) -> None:
        """Append *record* as one line; with *sync*, fsync the file before returning."""
        line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode("utf-8")
        with self._disk_full_named():
            self._fh.write(line)
            self._fh.flush()
            if sync:
                os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Close the file."""
        self._fh.close()

    @contextlib.contextmanager
    def _disk_full_named(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFullError(f"disk full while appending to {self.path} ({exc})") from exc
            raise


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one JSON line to *path* and fsync it before returning (see :class:`JsonlAppender`)."""
    out = JsonlAppender(path)
    try:
        out.append(record, sync=True)
    finally:
        out.close()


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON-lines file; only a torn last line (no newline, not JSON) is skipped.

    Any other line that is not a JSON object raises :class:`InputError` naming the line.
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); expected JSON lines") from exc
    lines = text.split("\n")
    records: list[dict[str, Any]] = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == len(lines):
                log.warning("%s: skipping a torn last line (%d bytes)", path, len(line))
                continue  # cut short by a crash; the next append removes it
            raise InputError(f"{path}: line {i} is not JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise InputError(f"{path}: line {i} is not a JSON object")
        records.append(obj)
    return records


def remove_partials(directory: str | os.PathLike[str]) -> int:
    """Delete leftover ``*.partial`` files below *directory*; return how many were removed."""
    n = 0
    for p in Path(directory).rglob(f"*{PARTIAL_SUFFIX}"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(directory: str | os.PathLike[str], *, recursive: bool = True) -> int:
    """Delete ``.NAME.PID.partial`` files in (or below) *directory* whose process is gone.

    Safe without a lock: a file of a process that still runs is kept. Returns the count.
    """
    n = 0
    root = Path(directory)
    found = root.rglob if recursive else root.glob
    for p in found(f".*{PARTIAL_SUFFIX}"):
        pid = p.name[: -len(PARTIAL_SUFFIX)].rsplit(".", 1)[-1]
        if pid.isdigit() and not _running(int(pid)):
            p.unlink(missing_ok=True)
            n += 1
    return n
