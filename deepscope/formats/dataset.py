"""The on-disk dataset format written by ``deepscope acquire`` and read by registration.

A dataset directory holds::

    dataset.json      DatasetInfo: plan, microscope profile (objectives, calibration), versions
    manifest.jsonl    one FieldRecord per finished (done or failed) field, append-only
    fields/*.ome.tif  one OME-TIFF per field: (z, y, x, c), stage positions read back per plane

Only fields listed in the manifest as ``done`` exist for readers; anything else in ``fields/``
(a ``.partial`` file, a file whose manifest line was never written) is not part of the dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deepscope.atomic import read_jsonl
from deepscope.errors import InputError
from deepscope.objective import Objective
from deepscope.ometiff import ImageMeta, read_ome_tiff
from deepscope.paths import safe_join
from deepscope.validated import load_validated

DATASET_VERSION: Literal[1] = 1
INFO_NAME = "dataset.json"
MANIFEST_NAME = "manifest.jsonl"
FIELDS_DIR = "fields"

Role = Literal["tile", "target", "flat"]


def flat_field_ids(objective: str) -> tuple[str, str]:
    """Field ids of an objective's blank frames: at the full exposure, and at half of it."""
    return f"flat_{objective}", f"flat_{objective}_half"


class ObjectiveInfo(Objective):
    """An objective as the dataset saw it: its preset name and the pixel size it gave."""

    model_config = ConfigDict(extra="ignore")

    name: str
    pixel_size_um: float = Field(gt=0)


class Calibration(BaseModel):
    """Offset of the target objective's field centre relative to the tile objective's, in um."""

    model_config = ConfigDict(frozen=True)

    dx_um: float = 0.0
    dy_um: float = 0.0
    dz_um: float = 0.0


class DatasetInfo(BaseModel):
    """Contents of ``dataset.json``."""

    model_config = ConfigDict(frozen=True)

    format_version: Literal[1] = DATASET_VERSION
    software_version: str
    versions: dict[str, str] = Field(
        default_factory=dict, description="versions of the libraries that wrote the dataset"
    )
    created: str
    tile_objective: ObjectiveInfo
    target_objective: ObjectiveInfo
    calibration: Calibration = Field(default_factory=Calibration)
    calibrated: bool = Field(
        default=False,
        description="whether the offsets were measured ('calibrate'); False: assumed 0",
    )
    plan: dict[str, Any] = Field(default_factory=dict)
    plan_hash: str = ""
    profile: dict[str, Any] = Field(default_factory=dict)
    backend: str = "simulated"


class FieldRecord(BaseModel):
    """One line of ``manifest.jsonl``: a field that finished, successfully or not."""

    model_config = ConfigDict(frozen=True)

    field_id: str
    role: Role
    objective: str
    status: Literal["done", "failed"]
    path: str | None = Field(default=None, description="relative to the dataset directory")
    x_um: float = Field(description="intended stage x (the file holds the read-back positions)")
    y_um: float
    z_um: float | None = None
    grid_row: int | None = None
    grid_col: int | None = None
    attempts: int = 1
    reason: str | None = None
    finished_at: str | None = None


class Dataset:
    """A dataset directory opened for reading."""

    def __init__(self, root: Path, info: DatasetInfo, records: list[FieldRecord]) -> None:
        self.root = root
        self.info = info
        self.records = records

    def done(self, role: Role | None = None) -> list[FieldRecord]:
        """Records of successfully acquired fields, optionally of one role."""
        return [r for r in self.records if r.status == "done" and (role is None or r.role == role)]

    def failed(self) -> list[FieldRecord]:
        """Records of fields that failed, with their reasons."""
        return [r for r in self.records if r.status == "failed"]

    def path_of(self, record: FieldRecord) -> Path:
        """Absolute path of a record's image; refuses paths outside the dataset."""
        if record.path is None:
            raise InputError(f"field {record.field_id} has no image (status {record.status})")
        return safe_join(self.root, record.path)

    def load(self, record: FieldRecord) -> tuple[np.ndarray, ImageMeta]:
        """Image ``(z, y, x, c)`` and metadata of a done field.

        A file whose own field id (written into its OME metadata) is not the record's, e.g.
        two field files swapped by hand, is refused with :class:`InputError`.
        """
        path = self.path_of(record)
        stack, meta = read_ome_tiff(path)
        own = meta.annotations.get("field_id")
        if own is not None and own != record.field_id:
            raise InputError(
                f"{path} holds field {own!r}, but {MANIFEST_NAME} lists it as "
                f"{record.field_id!r}; put the original files back"
            )
        return stack, meta


def read_records(root: Path) -> list[FieldRecord]:
    """Parse ``manifest.jsonl``; the last record of a field wins (a retry after a failure)."""
    latest: dict[str, FieldRecord] = {}
    for i, raw in enumerate(read_jsonl(root / MANIFEST_NAME), start=1):
        try:
            rec = FieldRecord.model_validate(raw)
        except ValidationError as exc:
            raise InputError(f"{root / MANIFEST_NAME}: line {i} is not a field record") from exc
        latest[rec.field_id] = rec
    return list(latest.values())


def open_dataset(directory: str | Path) -> Dataset:
    """Open a dataset directory written by ``deepscope acquire``."""
    root = Path(directory)
    info_path = root / INFO_NAME
    if not info_path.is_file():
        raise InputError(f"{root} is not a deepscope dataset: {INFO_NAME} is missing")
    info = load_validated(info_path, DatasetInfo, "dataset description")
    return Dataset(root, info, read_records(root))
