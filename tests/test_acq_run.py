from __future__ import annotations

import errno
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deepscope.ometiff
from acquire.plan import AcquisitionPlan
from acquire.profile import MicroscopeProfile, StageLimits
from acquire.runner import AcquisitionProgress, run_acquisition
from deepscope.errors import DiskFullError, HardwareError, InputError
from deepscope.formats.dataset import Calibration, open_dataset
from simulators import FaultConfig, make_core, microscope_of

ROI = {"width": 128, "height": 128}


def small_plan(**over: Any) -> AcquisitionPlan:
    """2x2 tiles (40x field 23.7 um at ROI 128) and four 3-plane 100x fields."""
    raw: dict[str, Any] = {
        "name": "test",
        "region": {"x_um": 100.0, "y_um": 200.0, "width_um": 40.0, "height_um": 40.0},
        "camera_roi": ROI,
        "tiles": {"exposure_ms": 5},
        "targets": {"count": 4, "seed": 2, "exposure_ms": 8, "z": {"slices": 3, "step_um": 0.4}},
    }
    raw.update(over)
    return AcquisitionPlan.from_dict(raw)


def _lines(path: Path) -> list[str]:
    return (path / "manifest.jsonl").read_text().splitlines()


def test_small_plan_files_and_metadata_match_the_stage(tmp_path: Path) -> None:
    core = make_core(seed=3)
    truth = microscope_of(core)
    cal = Calibration(dx_um=1.5, dy_um=-2.0, dz_um=0.3)
    profile = MicroscopeProfile(calibration=cal)
    seen: list[AcquisitionProgress] = []
    oil: list[str] = []
    summary = run_acquisition(
        small_plan(),
        tmp_path / "ds",
        core,
        profile=profile,
        pause_for_oil=lambda: oil.append(truth.objective) is None,
        progress=seen.append,
    )
    assert (summary.done, summary.failed, summary.total, summary.cancelled) == (8, 0, 8, False)
    assert list(core.getROI()) == [0, 0, 2048, 2048]  # the plan's ROI is not left behind
    assert oil == ["40x"]  # the pause came before the turret moved to 100x
    assert [p.finished for p in seen if p.field_id] == list(range(1, 9))
    ds = open_dataset(tmp_path / "ds")
    assert ds.info.plan_hash == small_plan().plan_hash()
    assert ds.info.calibration == cal
    assert "pycromanager" in ds.info.versions
    tiles, targets = ds.done("tile"), ds.done("target")
    assert len(tiles) == 4
    assert len(targets) == 4
    assert sorted(p.name for p in (tmp_path / "ds" / "fields").iterdir()) == sorted(
        f"{r.field_id}.ome.tif" for r in ds.records
    )
    # every plane's metadata is the stage position the simulator reports for that snap
    planes = []
    for rec in tiles + targets:
        img, meta = ds.load(rec)
        n = 1 if rec.role == "tile" else 3
        assert img.shape == (n, 128, 128, 3)
        assert meta.objective == rec.objective
        assert meta.pixel_size_um == pytest.approx(7.4 / (40 if rec.role == "tile" else 100))
        assert meta.z_step_um == (None if rec.role == "tile" else pytest.approx(0.4))
        assert meta.na == pytest.approx(0.95 if rec.role == "tile" else 1.4)
        planes.extend((rec.objective, p.x_um, p.y_um, p.z_um) for p in meta.planes)
    log = [
        (s.objective, s.commanded_x_um, s.commanded_y_um, s.commanded_z_um) for s in truth.snap_log
    ]
    assert len(planes) == len(log) == 16
    for got, want in zip(planes, log, strict=True):
        assert got[0] == want[0]
        assert got[1:] == pytest.approx(want[1:], abs=1e-9)
    # targets: stage = 40x-frame centre - (dx, dy), z = focus + dz, centres inside the region
    for rec in targets:
        x, y = rec.x_um + cal.dx_um, rec.y_um + cal.dy_um
        assert 100 < x < 140
        assert 200 < y < 240
        _, meta = ds.load(rec)
        assert [p.z_um for p in meta.planes] == pytest.approx([-0.1, 0.3, 0.7])


def test_camera_faults_end_as_recorded_failures(tmp_path: Path) -> None:
    faults = FaultConfig(fail_snaps=(1, 2, 3, 9), fail_moves=(5,))
    core = make_core(seed=1, faults=faults)
    summary = run_acquisition(small_plan(retries=2), tmp_path / "ds", core)
    ds = open_dataset(tmp_path / "ds")
    # snap 1 (second tile) fails three times: retries spent; snap 9 fails once: retried
    assert summary.failed == 1
    assert summary.done == 7
    [bad] = ds.failed()
    assert bad.field_id == "tile_r00_c01"
    assert bad.attempts == 3
    assert "simulated fault" in (bad.reason or "")
    assert sum(r.attempts == 2 for r in ds.done()) == 1
    assert len(_lines(tmp_path / "ds")) == 8


def test_abort_policy_stops_with_a_valid_dataset(tmp_path: Path) -> None:
    core = make_core(seed=1, faults=FaultConfig(fail_snaps=(2,)))
    with pytest.raises(HardwareError, match="failed after 1 attempt"):
        run_acquisition(small_plan(retries=0, on_failure="abort"), tmp_path / "ds", core)
    ds = open_dataset(tmp_path / "ds")
    assert len(ds.done()) == 2
    assert len(ds.failed()) == 1


def test_cancel_then_resume_completes_without_duplicates(tmp_path: Path) -> None:
    cancel = threading.Event()

    def progress(p: AcquisitionProgress) -> None:
        if p.finished >= 2:
            cancel.set()

    first = run_acquisition(
        small_plan(), tmp_path / "ds", make_core(seed=4), progress=progress, cancel=cancel
    )
    assert first.cancelled
    assert 2 <= first.done < 8
    with pytest.raises(InputError, match="pass --resume"):
        run_acquisition(small_plan(), tmp_path / "ds", make_core(seed=4))
    core = make_core(seed=4)
    second = run_acquisition(small_plan(), tmp_path / "ds", core, resume=True)
    assert (second.done, second.skipped, second.cancelled) == (8, first.done, False)
    ids = [line.split('"field_id":"')[1].split('"')[0] for line in _lines(tmp_path / "ds")]
    assert len(ids) == len(set(ids)) == 8
    # the resumed run only took the missing fields: 8 - done fields (tiles 1 plane, targets 3)
    assert len(microscope_of(core).snap_log) < 16


def test_disk_full_stops_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = deepscope.ometiff.tifffile.imwrite
    calls = {"n": 0}

    def filling(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(deepscope.ometiff.tifffile, "imwrite", filling)
    with pytest.raises(DiskFullError, match="disk full"):
        run_acquisition(small_plan(), tmp_path / "ds", make_core(seed=1))
    ds = open_dataset(tmp_path / "ds")
    assert len(ds.done()) == 3
    assert not list((tmp_path / "ds").rglob("*.partial"))
    for rec in ds.done():
        assert ds.load(rec)[0].shape[1:] == (128, 128, 3)


@pytest.mark.parametrize(
    ("plan", "profile", "needle"),
    [
        (
            small_plan(region={"x_um": 49_990, "y_um": 0, "width_um": 40, "height_um": 40}),
            MicroscopeProfile(),
            "outside the stage limits",
        ),
        (small_plan(tiles={"objective": "60x"}), MicroscopeProfile(), "'60x' is unknown"),
        (
            small_plan(focus_z_um=999.8),
            MicroscopeProfile(stage_limits=StageLimits()),
            "z .* outside the stage limits",
        ),
        (small_plan(camera_roi={"width": 4096, "height": 64}), MicroscopeProfile(), "larger"),
    ],
)
def test_bad_input_refused_before_stage_moves(
    tmp_path: Path, plan: AcquisitionPlan, profile: MicroscopeProfile, needle: str
) -> None:
    core = make_core(seed=0)
    with pytest.raises(InputError, match=needle):
        run_acquisition(plan, tmp_path / "ds", core, profile=profile)
    truth = microscope_of(core)
    assert truth.commanded_xyz == (0.0, 0.0, 0.0)
    assert truth.snap_log == []
    assert not (tmp_path / "ds").exists()


def test_different_plan_in_same_dir_is_refused(tmp_path: Path) -> None:
    run_acquisition(small_plan(targets={"count": 0}), tmp_path / "ds", make_core(seed=0))
    core = make_core(seed=0)
    with pytest.raises(InputError, match="different plan"):
        run_acquisition(small_plan(), tmp_path / "ds", core, resume=True)
    assert microscope_of(core).snap_log == []


def test_per_field_autofocus_finds_the_focus(tmp_path: Path) -> None:
    core = make_core(seed=5, specimen="usaf")
    truth = microscope_of(core)
    plan = small_plan(
        region={"x_um": -10, "y_um": -10, "width_um": 20, "height_um": 20},
        focus_z_um=2.0,
        autofocus={"mode": "per_field", "range_um": 6, "step_um": 0.5},
        targets={"count": 0},
    )
    run_acquisition(plan, tmp_path / "ds", core)
    [tile] = open_dataset(tmp_path / "ds").done()
    assert tile.z_um == pytest.approx(truth.objectives["40x"].parfocal_z_um, abs=0.3)
    assert np.isfinite(tile.z_um)


def test_skip_empty_keeps_target_fields_on_tissue(tmp_path: Path) -> None:
    # a region whose left half is tissue and right half bare glass (specimen seed 0)
    region = {"x_um": 2910.0, "y_um": 90.0, "width_um": 60.0, "height_um": 60.0}
    targets = {"count": 5, "seed": 3, "z": {"slices": 1, "step_um": 0.4}}
    fov = 128 * 0.074
    fractions = {}
    for skip in (False, True):
        core = make_core(seed=0)
        out = tmp_path / f"skip{skip}"
        plan = small_plan(region=region, targets={**targets, "skip_empty": skip})
        run_acquisition(plan, out, core)
        specimen = microscope_of(core).specimen
        fractions[skip] = [
            specimen.tissue_fraction(r.x_um, r.y_um, fov, fov)
            for r in open_dataset(out).done("target")
        ]
    assert min(fractions[False]) < 0.1  # without the check some fields land on glass
    assert len(fractions[True]) == 5
    assert min(fractions[True]) > 0.3


def test_focus_map_sets_the_tile_focus(tmp_path: Path) -> None:
    core = make_core(seed=5, specimen="usaf")
    truth = microscope_of(core)
    plan = small_plan(
        region={"x_um": -20, "y_um": -10, "width_um": 40, "height_um": 20},
        focus_z_um=-1.5,
        autofocus={"mode": "focus_map", "range_um": 6, "step_um": 0.5, "map_points": 3},
        targets={"count": 0},
    )
    run_acquisition(plan, tmp_path / "ds", core)
    tiles = open_dataset(tmp_path / "ds").done()
    assert len(tiles) == 2
    for rec in tiles:
        assert rec.z_um == pytest.approx(truth.objectives["40x"].parfocal_z_um, abs=0.3)
