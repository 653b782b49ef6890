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
        for parent in target.parents:
            marker = next((m for m in DATA_MARKERS if (parent / m).is_file()), None)
            if marker is not None:
                raise InputError(
                    f"output {out} is inside {parent}, which holds acquired or registered data "
                    f"({marker}); write enhanced images to another directory"
                )
