"""Path checks for names that come from plans, datasets and other user files."""

from __future__ import annotations

import os
from pathlib import Path

from deepscope.errors import InputError, StorageError


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


#: files that mark a directory of acquired or registered data, never written into by ``enhance``
DATA_MARKERS = ("dataset.json", "manifest.jsonl", "pairs.json")


def check_new_outputs(outputs: list[Path], inputs: list[Path]) -> None:
    """Refuse output files that would replace an input or land inside a data directory.

    Raises :class:`~deepscope.errors.InputError` naming the output when it is one of *inputs*
    (the same file by any path), an existing directory, or inside a directory holding a
    dataset or pairs (any parent with one of :data:`DATA_MARKERS`).
    """
    sources = {p.resolve() for p in inputs}
    for out in outputs:
        target = out.resolve()
        if target in sources or any(target.exists() and target.samefile(s) for s in sources):
            raise InputError(
                f"output {out} is also an input; raw images are never replaced, choose another -o"
            )
        if target.is_dir():
            raise InputError(f"output {out} is a directory; expected a new .ome.tif file name")
        check_outside_data(out, DATA_MARKERS)


def check_outside_data(out: Path, markers: tuple[str, ...] = DATA_MARKERS) -> None:
    """Refuse an output path that is, or lies inside, a directory holding one of *markers*."""
    target = out.resolve()
    for parent in (target, *target.parents):
        marker = next((m for m in markers if (parent / m).is_file()), None)
        if marker is not None:
            raise InputError(
                f"output {out} is inside {parent}, which holds acquired or registered data "
                f"({marker}); write to another directory"
            )


def read_user_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of a user's file (*what*: "plan", "profile"...), or a one-line error."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{what} {p} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "expected UTF-8 JSON or YAML"
        ) from exc
    except OSError as exc:
        raise InputError(f"{what} {p} cannot be read ({exc.strerror or exc})") from exc


def check_output_file(path: str | Path) -> None:
    """Refuse, before any work, an output file that could not be written.

    Raises :class:`~deepscope.errors.InputError` if *path* is a directory or sits below a file,
    and :class:`~deepscope.errors.StorageError` if its nearest existing directory is not
    writable (read-only filesystem or no permission).
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"output {p} is a directory; expected a file name")
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"output {p} is below {parent}, which is a file; expected a directory")
    if not os.access(parent, os.W_OK):
        raise StorageError(f"cannot write {p}: {parent} is read-only or not writable")
