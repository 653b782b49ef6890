"""Writing a dataset directory crash-safely, and picking it up again after a crash.

Order of operations for each field: the OME-TIFF is written under a temporary name, fsynced and
renamed into place (:func:`deepscope.ometiff.write_ome_tiff`), and only then is its
:class:`~deepscope.formats.dataset.FieldRecord` appended (and fsynced) to ``manifest.jsonl``.
A crash at any point leaves either a ``.partial`` file (removed on resume), a complete file
without a manifest line (acquired again on resume and replaced atomically), or a finished field.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from acquire.layout import FieldSpec
from deepscope.atomic import append_jsonl, atomic_write_json, remove_partials
from deepscope.errors import InputError, StorageError
from deepscope.formats.dataset import (
    FIELDS_DIR,
    INFO_NAME,
    MANIFEST_NAME,
    DatasetInfo,
    FieldRecord,
    read_records,
)
from deepscope.locking import LOCK_NAME
from deepscope.ometiff import ImageMeta, write_ome_tiff
from deepscope.validated import load_validated

log = logging.getLogger("deepscope.acquire")

TARGETS_NAME = "targets.json"


@contextlib.contextmanager
def _writing(what: str, path: Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing *what* into a :class:`StorageError` naming it.

    The acquisition stops on it (re-imaging a field whose file cannot be written only adds
    light on the sample); a full disk stays a :class:`~deepscope.errors.DiskFullError`.
    """
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        raise StorageError(
            f"cannot write {what} to {path}: {exc.strerror or exc}; fix that, then rerun with "
            "--resume (every field recorded before is intact)"
        ) from exc


def now_iso() -> str:
    """Current UTC time as ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class DatasetWriter:
    """Append-only writer of one dataset directory; see the module docstring for the order."""

    def __init__(self, root: Path, info: DatasetInfo) -> None:
        self.root = root
        self.info = info
        self.fields_dir = root / FIELDS_DIR
        self.manifest = root / MANIFEST_NAME

    @staticmethod
    def check(directory: str | Path, plan_hash: str, *, resume: bool) -> DatasetInfo | None:
        """Check that *directory* can take the plan *plan_hash*, before anything moves.

        Returns the dataset description already there (None for a new or empty directory).
        Raises :class:`InputError` for files that are not a dataset, a dataset of a different
        plan, or this plan's dataset without *resume*.
        """
        root = Path(directory)
        info_path = root / INFO_NAME
        if not info_path.is_file():
            if root.exists() and any(p.name != LOCK_NAME for p in root.iterdir()):
                raise InputError(
                    f"{root} is not empty and not a deepscope dataset; choose a new --out"
                )
            return None
        existing = load_validated(info_path, DatasetInfo, "dataset description")
        if existing.plan_hash != plan_hash:
            raise InputError(
                f"{root} holds a dataset of a different plan (hash {existing.plan_hash[:12]},"
                f" this plan {plan_hash[:12]}); choose a new --out directory"
            )
        if not resume:
            raise InputError(
                f"{root} already holds a dataset of this plan; pass --resume to continue it"
            )
        return existing

    @classmethod
    def open(cls, directory: str | Path, info: DatasetInfo, *, resume: bool) -> DatasetWriter:
        """Create *directory* for *info*, or reopen it to resume the same plan.

        Raises :class:`InputError` if the directory holds something else: files that are not a
        dataset, a dataset of a different plan (compared by plan hash), or this plan's dataset
        without *resume*. Leftover ``.partial`` files of a crashed run are removed.
        """
        root = Path(directory)
        info_path = root / INFO_NAME
        existing = cls.check(root, info.plan_hash, resume=resume)
        if existing is not None:
            if existing.profile != info.profile:
                raise InputError(
                    f"{root} was acquired with a different microscope profile (objectives or "
                    "calibration); resume with the profile it was started with"
                )
            removed = remove_partials(root)
            if removed:
                log.info("removed %d partial file(s) left by an interrupted run", removed)
            return cls(root, existing)
        root.mkdir(parents=True, exist_ok=True)
        (root / FIELDS_DIR).mkdir(exist_ok=True)
        atomic_write_json(info_path, info.model_dump(mode="json"))
        return cls(root, info)

    def records(self) -> dict[str, FieldRecord]:
        """The latest manifest record of every finished field."""
        return {r.field_id: r for r in read_records(self.root)}

    def done_ids(self) -> set[str]:
        """Fields acquired successfully; a resumed run skips them (failed ones are retried)."""
        return {r.field_id for r in self.records().values() if r.status == "done"}

    def write_field(
        self,
        spec: FieldSpec,
        stack: np.ndarray,
        meta: ImageMeta,
        *,
        stage_xy_um: tuple[float, float],
        z_um: float | None,
        attempts: int,
    ) -> FieldRecord:
        """Write a field's image atomically, then append its ``done`` record."""
        rel = f"{FIELDS_DIR}/{spec.filename}"
        with _writing(spec.field_id, self.root / rel):
            write_ome_tiff(self.root / rel, stack, meta)
        record = FieldRecord(
            field_id=spec.field_id,
            role=spec.role,
            objective=spec.objective,
            status="done",
            path=rel,
            x_um=stage_xy_um[0],
            y_um=stage_xy_um[1],
            z_um=z_um,
            grid_row=spec.grid_row,
            grid_col=spec.grid_col,
            attempts=attempts,
            finished_at=now_iso(),
        )
        with _writing(f"the record of {spec.field_id}", self.manifest):
            append_jsonl(self.manifest, record.model_dump(mode="json"))
        return record

    def write_failure(
        self, spec: FieldSpec, *, stage_xy_um: tuple[float, float], attempts: int, reason: str
    ) -> FieldRecord:
        """Append a ``failed`` record with the reason; no image is written."""
        record = FieldRecord(
            field_id=spec.field_id,
            role=spec.role,
            objective=spec.objective,
            status="failed",
            x_um=stage_xy_um[0],
            y_um=stage_xy_um[1],
            grid_row=spec.grid_row,
            grid_col=spec.grid_col,
            attempts=attempts,
            reason=reason,
            finished_at=now_iso(),
        )
        with _writing(f"the failure record of {spec.field_id}", self.manifest):
            append_jsonl(self.manifest, record.model_dump(mode="json"))
        return record

    def saved_targets(self) -> list[tuple[float, float]] | None:
        """Target centres chosen by an earlier run of this dataset, if any."""
        path = self.root / TARGETS_NAME
        if not path.is_file():
            return None
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [(float(x), float(y)) for x, y in raw["centres_um"]]

    def save_targets(self, centres: list[tuple[float, float]]) -> None:
        """Record the chosen target centres so that a resumed run takes the same fields."""
        atomic_write_json(self.root / TARGETS_NAME, {"centres_um": [list(c) for c in centres]})
