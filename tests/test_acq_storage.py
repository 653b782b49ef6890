from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

import deepscope.ometiff
from acquire.layout import FieldSpec
from acquire.storage import DatasetWriter
from deepscope.errors import DiskFullError, InputError
from deepscope.formats.dataset import DatasetInfo, ObjectiveInfo, open_dataset
from deepscope.ometiff import ImageMeta, PlaneMeta


def _info(plan_hash: str = "a" * 64) -> DatasetInfo:
    return DatasetInfo(
        software_version="test",
        created="now",
        tile_objective=ObjectiveInfo(name="40x", magnification=40, na=0.95, pixel_size_um=0.185),
        target_objective=ObjectiveInfo(
            name="100x", magnification=100, na=1.4, immersion="oil", pixel_size_um=0.074
        ),
        plan_hash=plan_hash,
    )


def _write(writer: DatasetWriter, fid: str, value: int) -> None:
    spec = FieldSpec(field_id=fid, role="tile", objective="40x", x_um=1.0, y_um=2.0)
    meta = ImageMeta(pixel_size_um=0.185, planes=(PlaneMeta(x_um=1.01, y_um=2.0, z_um=0.0),))
    writer.write_field(
        spec, np.full((1, 8, 8), value, np.uint16), meta, stage_xy_um=(1, 2), z_um=0, attempts=1
    )


def test_dataset_round_trip_through_reader(tmp_path: Path) -> None:
    w = DatasetWriter.open(tmp_path / "ds", _info(), resume=False)
    _write(w, "tile_r00_c00", 7)
    w.write_failure(
        FieldSpec(field_id="tile_r00_c01", role="tile", objective="40x", x_um=3, y_um=2),
        stage_xy_um=(3, 2),
        attempts=3,
        reason="camera timeout",
    )
    ds = open_dataset(tmp_path / "ds")
    assert [r.field_id for r in ds.done()] == ["tile_r00_c00"]
    assert ds.failed()[0].reason == "camera timeout"
    img, meta = ds.load(ds.done()[0])
    assert img.shape == (1, 8, 8, 1)
    assert int(img.max()) == 7
    assert meta.planes[0].x_um == pytest.approx(1.01)


def test_reopen_rules(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    w = DatasetWriter.open(root, _info(), resume=False)
    _write(w, "f1", 1)
    with pytest.raises(InputError, match="pass --resume"):
        DatasetWriter.open(root, _info(), resume=False)
    with pytest.raises(InputError, match="different plan"):
        DatasetWriter.open(root, _info("b" * 64), resume=True)
    other_profile = _info().model_copy(update={"profile": {"calibration": {"dx_um": 1.0}}})
    with pytest.raises(InputError, match="different microscope profile"):
        DatasetWriter.open(root, other_profile, resume=True)
    (root / "fields" / ".f2.ome.tif.123.partial").write_bytes(b"torn")
    again = DatasetWriter.open(root, _info(), resume=True)
    assert again.done_ids() == {"f1"}
    assert not list(root.rglob("*.partial"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        DatasetWriter.open(other, _info(), resume=False)


def test_disk_full_keeps_dataset_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = DatasetWriter.open(tmp_path / "ds", _info(), resume=False)
    _write(w, "f1", 1)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(deepscope.ometiff.tifffile, "imwrite", full)
    with pytest.raises(DiskFullError, match="disk full"):
        _write(w, "f2", 2)
    ds = open_dataset(tmp_path / "ds")
    assert [r.field_id for r in ds.done()] == ["f1"]
    assert sorted(p.name for p in (tmp_path / "ds" / "fields").iterdir()) == ["f1.ome.tif"]
