"""Path checks for names that come from plans, datasets and other user files."""

from __future__ import annotations

from pathlib import Path

from deepscope.errors import InputError


def safe_join(root: str | Path, relative: str | Path) -> Path:
    """Join *relative* onto *root*, refusing any result outside *root*.

    Absolute paths, ``..`` components and symlinks that leave *root* raise
    :class:`~deepscope.errors.InputError`.
    """
    root_path = Path(root).resolve()
    rel = Path(relative)
    if rel.is_absolute():
        raise InputError(f"path {str(relative)!r} must be relative to {root_path}")
    candidate = (root_path / rel).resolve()
    if candidate != root_path and root_path not in candidate.parents:
        raise InputError(f"path {str(relative)!r} points outside {root_path}")
    return candidate
