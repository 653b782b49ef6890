from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from acquire.backends import python_scope
from acquire.calibrate import calibrate, locate
from acquire.plan import CameraROI
from acquire.profile import MicroscopeProfile
from app.cli import main
from simulators import make_core, microscope_of


def test_calibration_recovers_simulated_offsets() -> None:
    core = make_core(seed=2, specimen="usaf")
    truth = microscope_of(core).objectives
    want = (
        truth["100x"].offset_x_um - truth["40x"].offset_x_um,
        truth["100x"].offset_y_um - truth["40x"].offset_y_um,
        truth["100x"].parfocal_z_um - truth["40x"].parfocal_z_um,
    )
    with python_scope(core) as scope:
        result = calibrate(
            scope, MicroscopeProfile(), x_um=0, y_um=0, roi=CameraROI(width=256, height=256)
        )
    c = result.calibration
    assert result.match_score > 0.8
    assert c.dx_um == pytest.approx(want[0], abs=0.3)  # 40x pixel = 0.185 um
    assert c.dy_um == pytest.approx(want[1], abs=0.3)
    assert c.dz_um == pytest.approx(want[2], abs=0.1)
    assert result.tile_focus_z_um == pytest.approx(truth["40x"].parfocal_z_um, abs=0.2)


def test_locate_finds_a_known_shift() -> None:
    rng = np.random.default_rng(0)
    tile = rng.uniform(0, 1, (120, 160)).astype(np.float32)
    # target: a 40x40 tile patch centred 7 px right and 5 px below the centre, seen at 2x
    r0, c0 = 60 - 20 + 5, 80 - 20 + 7
    target = np.kron(tile[r0 : r0 + 40, c0 : c0 + 40], np.ones((2, 2), np.float32))
    dx, dy, score = locate(tile, target, 0.5)
    assert (dx, dy) == pytest.approx((7.0, 5.0), abs=0.2)
    assert score > 0.9


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "plan.yaml"
    bad.write_text(
        "region: {x_um: 0, y_um: 0, width_um: 50, height_um: 50}\n"
        "targets: {z: {slices: 3, step_um: 0}}\n"
    )
    assert main(["acquire", str(bad), "--out", str(tmp_path / "ds"), "--no-pause"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("deepscope: error:")
    assert "targets.z.step_um" in err[-1]
    assert not (tmp_path / "ds").exists()
    good = tmp_path / "good.yaml"
    good.write_text("region: {x_um: 0, y_um: 0, width_um: 50, height_um: 50}\n")
    missing = tmp_path / "scope.cfg"
    args = ["acquire", str(good), "--out", str(tmp_path / "ds"), "--mm-config", str(missing)]
    assert main(args) == 2
    assert capsys.readouterr().err.strip().endswith(f"configuration {missing} does not exist")


def test_engine_in_use_is_a_hardware_error(tmp_path: Path) -> None:
    from acquire.plan import AcquisitionPlan
    from acquire.pycro_core import pycro_engine
    from acquire.runner import run_acquisition
    from deepscope.errors import HardwareError

    core = make_core(seed=0)
    plan = AcquisitionPlan.from_dict(
        {"region": {"x_um": 0, "y_um": 0, "width_um": 9, "height_um": 9}}
    )
    with pycro_engine(core), pytest.raises(HardwareError, match="engine"):
        run_acquisition(plan, tmp_path / "ds", core)


def test_calibrate_cli_writes_a_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prof = tmp_path / "scope.json"
    assert (
        main(
            [
                "calibrate",
                "--seed",
                "1",
                "--x",
                "0",
                "--y",
                "0",
                "--roi",
                "192",
                "--out",
                str(prof),
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    loaded = MicroscopeProfile.from_file(prof)
    assert loaded.calibration.dx_um == pytest.approx(out["calibration"]["dx_um"])
    assert loaded.calibrated_objectives == ("40x", "100x")
