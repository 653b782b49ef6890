"""A disk that fills up, on a real small filesystem (tmpfs), in the middle of an acquisition.

tifffile reports a short write as a plain ``OSError("N requested and M written")`` without an
errno; it must still stop the run as disk full, with no field re-imaged or recorded failed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from small_fs import small_fs  # noqa: F401 (fixture)
from test_acq_run import small_plan

import acquire.passes
import deepscope.atomic
from acquire.runner import run_acquisition
from deepscope.errors import DiskFullError
from deepscope.formats.dataset import open_dataset
from deepscope.ometiff import ImageMeta, read_ome_tiff, write_ome_tiff
from simulators import make_core, microscope_of

MakeFs = Callable[[str], Path]


def test_tiff_cut_short_by_a_full_disk_is_disk_full(
    small_fs: MakeFs,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = small_fs("2m")
    keep = write_ome_tiff(
        root / "kept.ome.tif", np.ones((64, 64), np.uint16), ImageMeta(pixel_size_um=1)
    )
    # no free-space check first: the write itself runs into the end of the filesystem
    monkeypatch.setattr(deepscope.atomic, "check_free_space", lambda *a: None)
    big = np.ones((2048, 1024), np.uint16)  # 4 MB into 2 MB
    with pytest.raises(DiskFullError, match=r"requested and \d+ written"):
        write_ome_tiff(root / "big.ome.tif", big, ImageMeta(pixel_size_um=1))
    assert sorted(p.name for p in root.iterdir()) == ["kept.ome.tif"]  # no partial file left
    assert read_ome_tiff(keep)[0].shape == (1, 64, 64, 1)


@pytest.mark.parametrize("space_check", [True, False], ids=["checked-first", "mid-file"])
def test_disk_full_mid_run_stops_without_reimaging(
    small_fs: MakeFs,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    space_check: bool,
) -> None:
    if not space_check:  # neither before a field is imaged nor before its file is written
        monkeypatch.setattr(deepscope.atomic, "check_free_space", lambda *a: None)
        monkeypatch.setattr(acquire.passes, "check_free_space", lambda *a: None)
    root = small_fs("15m")
    # 256 px tiles (0.4 MB each) then ten 7-plane 100x fields (2.75 MB each): 15 MB fills up
    plan = small_plan(
        region={"x_um": 100.0, "y_um": 200.0, "width_um": 100.0, "height_um": 100.0},
        camera_roi={"width": 256, "height": 256},
        targets={"count": 10, "seed": 2, "exposure_ms": 2, "z": {"slices": 7, "step_um": 0.4}},
        retries=2,
    )
    core = make_core(seed=1)
    with pytest.raises(DiskFullError, match="disk full"):
        run_acquisition(plan, root / "ds", core)
    ds = open_dataset(root / "ds")
    tiles, targets = ds.done("tile"), ds.done("target")
    assert ds.failed() == []  # a full disk is not the camera's fault
    assert len(tiles) == 9
    assert 0 < len(targets) < 10
    for rec in tiles + targets:
        assert ds.load(rec)[0].shape[1:] == (256, 256, 3)
    assert not list((root / "ds").rglob("*.partial"))
    # no retries (they would add whole 7-plane fields): at most one field that did not fit was
    # imaged (found mid-file; the check before imaging estimates from the last field's size),
    # plus at most a few planes the engine took before the abort reached it
    n_snaps = len(microscope_of(core).snap_log)
    assert 9 + 7 * len(targets) <= n_snaps < 9 + 7 * (len(targets) + 2)
    # after freeing space, --resume finishes with exactly one record per field
    monkeypatch.undo()

    shutil.copytree(root / "ds", root.parent / "ds")
    summary = run_acquisition(plan, root.parent / "ds", make_core(seed=1), resume=True)
    assert (summary.done, summary.failed, summary.skipped) == (19, 0, 9 + len(targets))
    lines = (root.parent / "ds" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 19  # nothing repeated


def test_resume_onto_a_full_disk_images_nothing(small_fs: MakeFs) -> None:  # noqa: F811
    root = small_fs("3m")
    # 128 px: tiles 96 kB, 7-plane 100x fields 0.69 MB; the disk fills after a few fields
    plan = small_plan(
        targets={"count": 6, "seed": 2, "exposure_ms": 2, "z": {"slices": 7, "step_um": 0.4}}
    )
    with pytest.raises(DiskFullError):
        run_acquisition(plan, root / "ds", make_core(seed=1))
    manifest = (root / "ds" / "manifest.jsonl").read_bytes()
    done = len(open_dataset(root / "ds").done("target"))
    assert 0 < done < 6
    # how much room the stopped run left depends on where it stopped (a file cut short is
    # removed): fill the disk to below one tile, the "already full" disk of a resume
    free = shutil.disk_usage(root).free
    (root / "filler").write_bytes(b"\0" * max(0, free - 32 * 1024))
    assert shutil.disk_usage(root).free < 96 * 1024
    core = make_core(seed=1)
    with pytest.raises(DiskFullError, match=r"disk full: .* MB free, the next file needs"):
        run_acquisition(plan, root / "ds", core, resume=True)
    assert microscope_of(core).snap_log == []  # no field imaged, no light on the sample
    assert (root / "ds" / "manifest.jsonl").read_bytes() == manifest
    assert not list((root / "ds").rglob("*.partial"))
