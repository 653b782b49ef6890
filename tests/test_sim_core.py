"""The simulated microscope as a Micro-Manager core: devices, pixel size, MDA, pycromanager."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import useq

from deepscope.errors import InputError
from simulators import make_core, microscope_of

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def core():
    c = make_core(seed=1)
    c.setROI(0, 0, 96, 96)
    return c


def test_devices_and_objective_group(core):
    assert set(core.getLoadedDevices()) >= {"Camera", "XY", "Z", "Objective", "Shutter"}
    assert set(core.getAvailableConfigs("Objective")) == {"40x", "100x"}
    assert core.getShutterDevice() == "Shutter"


def test_pixel_size_follows_turret_and_binning(core):
    assert core.getPixelSizeUm() == pytest.approx(7.4 / 40)
    core.setConfig("Objective", "100x")
    assert core.getCurrentConfig("Objective") == "100x"
    assert core.getPixelSizeUm() == pytest.approx(7.4 / 100)
    core.setProperty("Objective", "State", 0)
    assert core.getPixelSizeUm() == pytest.approx(7.4 / 40)
    core.setProperty("Camera", "Binning", 2)
    assert core.getPixelSizeUm() == pytest.approx(2 * 7.4 / 40)
    assert core.getPixelSizeAffine()[0] == pytest.approx(2 * 7.4 / 40)


def test_snap_is_12bit_rgb_of_roi_and_logged(core):
    core.setXYPosition(120.0, -40.0)
    core.setPosition(0.5)
    core.snapImage()
    img = core.getImage()
    assert img.shape == (96, 96, 3)
    assert img.dtype == np.uint16
    assert img.max() <= 4095
    assert core.getImageBitDepth() == 12
    assert img.std() > 0
    truth = microscope_of(core).snap_log[-1]
    assert (truth.commanded_x_um, truth.commanded_y_um, truth.commanded_z_um) == (120.0, -40.0, 0.5)
    assert truth.roi == (0, 0, 96, 96)


def test_closed_shutter_without_autoshutter_gives_dark_frame(core):
    core.setAutoShutter(False)
    core.setShutterOpen(False)
    core.snapImage()
    dark = core.getImage().astype(float)
    core.setShutterOpen(True)
    core.snapImage()
    lit = core.getImage().astype(float)
    assert dark.mean() < 150 < lit.mean()


def test_exposure_scales_signal(core):
    means = []
    for exp in (5.0, 10.0):
        core.setExposure(exp)
        core.snapImage()
        means.append(core.getImage().astype(float).mean() - 100)
    assert means[1] / means[0] == pytest.approx(2.0, rel=0.05)


def test_mda_grid_and_z_plan(core):
    seq = useq.MDASequence(
        stage_positions=[
            useq.Position(
                x=0,
                y=0,
                z=0,
                sequence=useq.MDASequence(
                    grid_plan=useq.GridRowsColumns(
                        rows=1, columns=2, fov_width=17.76, fov_height=17.76
                    )
                ),
            )
        ],
        z_plan=useq.ZRangeAround(range=1.0, step=0.5),
        axis_order="pgz",
    )
    frames = []
    core.mda.events.frameReady.connect(lambda img, ev, md: frames.append((img, ev, md)))
    core.mda.run(seq)
    assert len(frames) == 2 * 3
    xs = sorted({round(md["position"]["x"], 3) for _, _, md in frames})
    assert xs == pytest.approx([-8.88, 8.88])
    for img, ev, md in frames:
        assert img.shape == (96, 96, 3)
        assert md["pixel_size_um"] == pytest.approx(0.185)
        assert md["position"]["z"] == pytest.approx(ev.z_pos)
    log = microscope_of(core).snap_log
    assert sorted(s.commanded_z_um for s in log[-6:]) == pytest.approx([-0.5, -0.5, 0, 0, 0.5, 0.5])


def test_continuous_sequence_is_paced_to_exposure(core):
    core.setExposure(25.0)
    core.snapImage()  # render the slide here once, so frames are paced, not render-bound
    core.startContinuousSequenceAcquisition(0)
    t0 = time.perf_counter()
    time.sleep(0.4)
    core.stopSequenceAcquisition()
    elapsed = time.perf_counter() - t0
    n = core.getRemainingImageCount()
    assert 1 <= n <= elapsed / 0.025 + 2
    img = core.getLastImage()
    assert img.shape == (96, 96, 3)


def test_exposure_change_applies_during_live_sequence(core):
    core.setExposure(5.0)
    core.startContinuousSequenceAcquisition(0)
    try:
        deadline = time.perf_counter() + 10
        while core.getRemainingImageCount() < 2 and time.perf_counter() < deadline:
            time.sleep(0.01)
        before = core.getLastImage().astype(float).mean()
        core.setExposure(10.0)
        core.clearCircularBuffer()
        while core.getRemainingImageCount() < 3 and time.perf_counter() < deadline:
            time.sleep(0.01)
        after = core.getLastImage().astype(float).mean()
    finally:
        core.stopSequenceAcquisition()
    assert (after - 100) / (before - 100) == pytest.approx(2.0, rel=0.1)


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (lambda c: c.setXYPosition(60_000.0, 0.0), r"x = 60000.0 um is beyond the travel limits"),
        (lambda c: c.setPosition(5_000.0), r"z = 5000.0 um is beyond"),
        (lambda c: c.setExposure(-1.0), r"exposure -1.0 ms is outside"),
        (lambda c: c.setROI(2000, 0, 100, 100), r"ROI .* is outside the 2048x2048 sensor"),
        (
            lambda c: microscope_of(c).set_objective("60x"),
            r"'60x' is unknown; expected one of: 40x, 100x",
        ),
    ],
)
def test_bad_input_raises_input_error(core, action, match):
    with pytest.raises(InputError, match=match):
        action(core)


def test_unknown_objective_preset_rejected_by_core(core):
    with pytest.raises(ValueError, match="60x"):
        core.setConfig("Objective", "60x")
    assert core.getCurrentConfig("Objective") == "40x"


def test_make_core_rejects_unknown_specimen():
    with pytest.raises(InputError, match="specimen 'mouse'"):
        make_core(specimen="mouse")  # type: ignore[arg-type]


PYCRO_SCRIPT = textwrap.dedent(
    """
    import json
    from pycromanager import Acquisition, multi_d_acquisition_events
    from acquire.pycro_core import pycro_engine
    from simulators import make_core, microscope_of

    core = make_core(seed=3)
    core.setROI(0, 0, 48, 48)
    core.setConfig("Objective", "100x")
    seen = []

    def keep(img, md):
        seen.append({"shape": list(img.shape), "x": md["XPositionUm"], "y": md["YPositionUm"],
                     "z": md["ZPositionUm"], "px": md["PixelSizeUm"],
                     "objective": md["Objective-Label"], "axes": md["Axes"]})

    with pycro_engine(core):
        with Acquisition(image_process_fn=keep, show_display=False) as acq:
            acq.acquire(multi_d_acquisition_events(
                xy_positions=[[0.0, 0.0], [150.0, 75.0]], z_start=-1.0, z_end=1.0, z_step=1.0))
    print(json.dumps({"frames": seen, "snaps": len(microscope_of(core).snap_log)}))
    """
)


def test_pycromanager_acquisition_runs_and_process_exits_zero():
    proc = subprocess.run(
        [sys.executable, "-c", PYCRO_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    frames = out["frames"]
    assert out["snaps"] == len(frames) == 6
    assert {(f["x"], f["y"]) for f in frames} == {(0.0, 0.0), (150.0, 75.0)}
    assert sorted({f["z"] for f in frames}) == [-1.0, 0.0, 1.0]
    for f in frames:
        assert f["shape"] == [48, 48, 3]
        assert f["px"] == pytest.approx(0.074)
        assert f["objective"] == "100x"
