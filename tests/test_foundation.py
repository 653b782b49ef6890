import subprocess
import sys

import numpy as np
import pytest
import tifffile

from deepscope.atomic import append_jsonl, atomic_path, read_jsonl, remove_partials
from deepscope.errors import InputError
from deepscope.ometiff import ImageMeta, PlaneMeta, read_ome_tiff, write_ome_tiff
from deepscope.paths import safe_join


def test_ome_tiff_roundtrip_rgb_stack(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4096, size=(3, 20, 30, 3), dtype=np.uint16)
    planes = [PlaneMeta(x_um=10.5, y_um=-3.0, z_um=z, exposure_ms=12.0) for z in (0.0, 0.4, 0.8)]
    meta = ImageMeta(
        pixel_size_um=0.074,
        z_step_um=0.4,
        planes=planes,
        objective="100x",
        magnification=100,
        na=1.4,
        immersion="Oil",
        annotations={"field_id": "t0001"},
    )
    path = write_ome_tiff(tmp_path / "a.ome.tif", data, meta)
    back, meta2 = read_ome_tiff(path)
    np.testing.assert_array_equal(back, data)
    assert meta2.pixel_size_um == pytest.approx(0.074)
    assert meta2.z_step_um == pytest.approx(0.4)
    assert [p.z_um for p in meta2.planes] == [0.0, 0.4, 0.8]
    assert meta2.planes[0].x_um == 10.5
    assert meta2.magnification == 100
    assert meta2.na == 1.4
    assert meta2.immersion == "Oil"
    assert meta2.annotations == {"field_id": "t0001"}
    with tifffile.TiffFile(path) as tf:  # what Fiji / Bio-Formats see
        assert tf.is_ome
        assert tf.series[0].axes == "ZYXS"
    assert not list(tmp_path.glob("*.partial"))


def test_read_rejects_truncated_and_non_ome(tmp_path):
    path = write_ome_tiff(
        tmp_path / "g.ome.tif", np.zeros((40, 40), np.uint16), ImageMeta(pixel_size_um=0.2)
    )
    raw = path.read_bytes()
    (tmp_path / "cut.ome.tif").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(InputError, match=r"cut\.ome\.tif"):
        read_ome_tiff(tmp_path / "cut.ome.tif")
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="not an OME-TIFF"):
        read_ome_tiff(tmp_path / "plain.tif")
    (tmp_path / "text.tif").write_text("hello")
    with pytest.raises(InputError, match="not a readable TIFF"):
        read_ome_tiff(tmp_path / "text.tif")


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")

    def crash_midway() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        crash_midway()
    assert target.read_text() == "old"
    assert remove_partials(tmp_path) == 0


def test_jsonl_skips_torn_line(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"a": 1})
    with open(path, "a") as fh:
        fh.write('{"a": 2')  # a write cut by a crash
    assert read_jsonl(path) == [{"a": 1}]


def test_safe_join_refuses_escapes(tmp_path):
    assert safe_join(tmp_path, "fields/a.tif") == (tmp_path / "fields/a.tif").resolve()
    for bad in ("../x", "/etc/passwd", "fields/../../x"):
        with pytest.raises(InputError, match=r"outside|relative"):
            safe_join(tmp_path, bad)


def test_cli_help_lists_commands():
    cmd = [sys.executable, "-m", "app.cli", "--help"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    for command in ("simulate", "calibrate", "acquire", "register", "train", "evaluate"):
        assert f"    {command}" in out.stdout
    for command in ("enhance", "export", "live", "gui", "demo"):
        assert f"    {command}" in out.stdout


def test_frame_meta_travels_as_micro_manager_tags_and_becomes_ome_metadata():
    from deepscope.framemeta import FrameMeta, from_tags, image_meta, to_tags

    nan = float("nan")
    partial = FrameMeta(
        x_um=1.0, y_um=2.0, z_um=nan, objective=None, pixel_size_um=0.185, exposure_ms=5.0
    )
    tags = to_tags(partial)  # what the microscope lacks is left out, never written as NaN
    assert tags == {
        "XPositionUm": 1.0,
        "YPositionUm": 2.0,
        "PixelSizeUm": 0.185,
        "Exposure-ms": 5.0,
    }
    core_now = FrameMeta(
        x_um=9.0, y_um=9.0, z_um=3.0, objective="40x", pixel_size_um=0.074, exposure_ms=1.0
    )
    back = from_tags(tags, lambda: core_now)  # the tags win; the rest is read back
    assert back == {
        **core_now,
        "x_um": 1.0,
        "y_um": 2.0,
        "pixel_size_um": 0.185,
        "exposure_ms": 5.0,
    }

    def not_read() -> FrameMeta:
        raise AssertionError("complete tags need no read-back")

    assert from_tags(to_tags(back), not_read) == back
    ome = image_meta(back, name="raw", t_s=0.5)
    plane = ome.planes[0]
    assert (plane.x_um, plane.y_um, plane.z_um, plane.t_s) == (1.0, 2.0, 3.0, 0.5)
    assert (ome.objective, ome.pixel_size_um, ome.name) == ("40x", 0.185, "raw")
    assert image_meta(back, name="enhanced", pixel_size_um=0.074).pixel_size_um == 0.074
