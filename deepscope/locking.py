"""One writer per output directory: an exclusive ``flock`` on ``DIR/.deepscope.lock``.

A second ``acquire --resume`` (or ``register``/``train`` into the same directory) started while
a first one runs is refused with a :class:`~deepscope.errors.LockedError` naming the process
that holds the lock. The kernel releases the lock when its holder exits, however it exits
(``kill -9`` included), so a crash never leaves a stale lock. The lock file stays in place (an
empty file while nobody holds it): deleting it could let two processes lock different files.
Taking the lock removes the temporary files that a killed earlier run left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

from deepscope.atomic import remove_stale_partials
from deepscope.errors import InputError, LockedError

LOCK_NAME = ".deepscope.lock"

P = ParamSpec("P")
R = TypeVar("R")


def _holder_text() -> bytes:
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
    return f"pid {os.getpid()} ({command[:200]})".encode()


@contextlib.contextmanager
def directory_lock(directory: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the exclusive lock of *directory* (created if missing) for the ``with`` block.

    A directory this call created and that is still empty at the end (a run refused by its
    checks) is removed again. Raises :class:`~deepscope.errors.LockedError` if another process
    holds the lock, and ``OSError`` if the directory cannot be created or written.
    """
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root} is an existing file; expected a directory")
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "unknown pid"
            raise LockedError(
                f"{root} is in use by another deepscope process: {holder}; wait for it to "
                "finish or stop it, then rerun"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_text(), 0)
        remove_stale_partials(root)  # temporary files of a killed run
        try:
            yield root
        finally:
            os.ftruncate(fd, 0)
            if created and os.listdir(root) == [LOCK_NAME]:
                path.unlink()
                root.rmdir()
    finally:
        os.close(fd)


def locks_directory(
    parameter: str, *, rank_zero_only: bool = False
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function so that it holds :func:`directory_lock` on its argument *parameter*.

    With *rank_zero_only*, processes that ``torchrun`` started as ranks other than 0 (``RANK``
    in the environment) share rank 0's lock instead of taking their own.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if rank_zero_only and os.environ.get("RANK", "0") != "0":
                return func(*args, **kwargs)
            directory = signature.bind(*args, **kwargs).arguments[parameter]
            with directory_lock(directory):
                return func(*args, **kwargs)

        return wrapper

    return decorate
