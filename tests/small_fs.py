"""Real small and read-only filesystems for the disk-full and read-only tests.

As root a tmpfs is mounted (``mount -t tmpfs -o size=...``); where mounting is not permitted
the test is skipped with the reason. A read-only directory for a non-root user is a directory
without write permission (root ignores permissions, so root gets a read-only mount).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _mount(target: Path, options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a real small filesystem")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Factory: a fresh tmpfs of the given size (``"15m"``), unmounted after the test."""
    mounted: list[Path] = []

    def make(size: str) -> Path:
        target = tmp_path / f"fs{len(mounted)}"
        _mount(target, f"size={size}")
        mounted.append(target)
        return target

    yield make
    for m in reversed(mounted):
        subprocess.run(["umount", str(m)], check=False)


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty directory nobody (root included) can write into."""
    target = tmp_path / "read_only"
    if os.geteuid() != 0:
        target.mkdir()
        target.chmod(0o555)
        yield target
        target.chmod(0o755)
        return
    _mount(target, "ro,size=1m")
    yield target
    subprocess.run(["umount", str(target)], check=False)
