"""What registration accepts as input, and the one-line errors for what it cannot use."""

from pathlib import Path

import numpy as np
import pytest
import tifffile

from deepscope.errors import InputError
from deepscope.ometiff import ImageMeta, PlaneMeta, write_ome_tiff
from model.registration import RegistrationOptions, register_dataset
from model.registration.sources import open_inputs


def _write(path, shape, pixel_um, x, y, *, mag=None, planes=True):
    nz = shape[0] if len(shape) == 4 else 1
    meta = ImageMeta(
        pixel_size_um=pixel_um,
        planes=tuple(PlaneMeta(x_um=x, y_um=y, z_um=0.4 * z) for z in range(nz)) if planes else (),
        magnification=mag,
    )
    return write_ome_tiff(path, np.zeros(shape, np.uint16), meta)


def _folder(tmp_path):
    for i in range(2):
        _write(tmp_path / f"t{i}.ome.tif", (64, 64, 3), 0.185, 10.0 * i, 0.0, mag=40)
    _write(tmp_path / "f0.ome.tif", (3, 40, 40, 3), 0.074, 2.0, 1.0, mag=100)
    return tmp_path


def test_folder_import_groups_by_objective(tmp_path):
    inputs = open_inputs(_folder(tmp_path))
    assert inputs.kind == "folder"
    assert [e.field_id for e in inputs.tiles] == ["t0", "t1"]
    assert [e.field_id for e in inputs.targets] == ["f0"]
    assert inputs.tile_pixel_um == 0.185
    assert inputs.target_pixel_um == 0.074
    assert inputs.channels == 3
    assert inputs.offset_um == (0.0, 0.0)
    f0 = inputs.targets[0]
    assert (f0.x_um, f0.y_um, f0.shape) == (2.0, 1.0, (3, 40, 40))


def test_missing_stage_position_names_the_file(tmp_path):
    _folder(tmp_path)
    _write(tmp_path / "f1.ome.tif", (40, 40, 3), 0.074, 0, 0, mag=100, planes=False)
    with pytest.raises(InputError, match=r"f1\.ome\.tif: no stage position"):
        open_inputs(tmp_path)


def test_missing_pixel_size_names_the_file(tmp_path):
    _folder(tmp_path)
    tifffile.imwrite(tmp_path / "bad.ome.tif", np.zeros((8, 8), np.uint16), ome=True)
    with pytest.raises(InputError, match=r"bad\.ome\.tif: no physical pixel size"):
        open_inputs(tmp_path)


def test_single_objective_is_refused(tmp_path):
    for i in range(3):
        _write(tmp_path / f"t{i}.ome.tif", (32, 32, 3), 0.185, i, 0, mag=40)
    with pytest.raises(InputError, match="one objective"):
        open_inputs(tmp_path)


def test_mismatched_channels_name_the_file(tmp_path):
    _folder(tmp_path)
    _write(tmp_path / "gray.ome.tif", (40, 40), 0.074, 0, 0, mag=100)
    with pytest.raises(
        InputError, match=r"gray\.ome\.tif: 1 channel\(s\), but .*t0\.ome\.tif has 3"
    ):
        open_inputs(tmp_path)


def test_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="neither a deepscope dataset"):
        open_inputs(tmp_path)
    with pytest.raises(InputError, match="not a directory"):
        open_inputs(tmp_path / "nope")


def test_options_validate_split():
    with pytest.raises(ValueError, match="sum to 1"):
        RegistrationOptions(split=(0.7, 0.2, 0.2))
    with pytest.raises(ValueError, match="min_ncc"):
        RegistrationOptions(min_ncc=2.0)


def test_register_folder_of_blank_images_rejects_every_field(tmp_path):
    """A folder import runs end to end; blank 100x fields are rejected as empty, not kept."""
    src = _folder(tmp_path / "src")
    summary = register_dataset(src, tmp_path / "out", RegistrationOptions(min_crop_px=8))
    assert summary.fields == 1
    assert summary.accepted == 0
    assert list(summary.rejections) == ["empty field"]
    assert (tmp_path / "out" / "pairs.json").is_file()


def test_register_never_writes_into_a_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main

    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "dataset.json").write_text("{}")
    before = sorted(p.name for p in ds.iterdir())
    for out in (ds, ds / "pairs"):
        assert main(["register", str(ds), "--out", str(out)]) == 2
        assert "holds acquired or registered data" in capsys.readouterr().err
    assert sorted(p.name for p in ds.iterdir()) == before
