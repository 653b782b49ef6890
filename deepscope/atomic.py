"""Crash-safe file output: write to a temporary name, fsync, then rename.

Nothing that is complete on disk is ever replaced by a partial file: a reader either sees the
old file, or the new complete one. Temporary files carry the ``.partial`` suffix so that a
resumed run can recognise and delete them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deepscope.errors import DiskFullError

PARTIAL_SUFFIX = ".partial"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to *final*; on success move it into place.

    The caller writes the complete file to the yielded path. If the block raises, the
    temporary file is removed and *final* is untouched. ``ENOSPC`` becomes
    :class:`~deepscope.errors.DiskFullError`.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}{PARTIAL_SUFFIX}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(
                f"disk full while writing {final}; earlier output is intact"
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


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one JSON line to *path* and fsync it before returning.

    A line that a crash cut short is ignored by :func:`read_jsonl`, so the file stays valid.
    """
    line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(f"disk full while appending to {path}") from exc
        raise


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read the complete lines of a JSON-lines file; a torn last line is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line torn by a crash; everything before it is intact
    return records


def remove_partials(directory: str | os.PathLike[str]) -> int:
    """Delete leftover ``*.partial`` files below *directory*; return how many were removed."""
    n = 0
    for p in Path(directory).rglob(f"*{PARTIAL_SUFFIX}"):
        p.unlink(missing_ok=True)
        n += 1
    return n
