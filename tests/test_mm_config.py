"""The simulator as a Micro-Manager configuration file, and every way a configuration can fail.

``deepscope simulate config -o sim.cfg`` writes the file; ``--mm-config sim.cfg`` must then run
exactly what ``--simulate`` runs (acquire, live, gui), and a bad file, a missing adapter, a
module that does not import or a port with nothing listening is one line and exit 3.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from app.cli import main
from deepscope.errors import HardwareError
from deepscope.mmcore import PyDeviceCore, load_config
from simulators import make_core, microscope_of

ROOT = Path(__file__).resolve().parents[1]
TINY_PLAN = (
    "region: {x_um: 0, y_um: 0, width_um: 20, height_um: 20}\n"
    "camera_roi: {width: 64, height: 64}\n"
    "targets: {count: 1, seed: 1, z: {slices: 2, step_um: 0.4}}\n"
)


@pytest.fixture(scope="module")
def sim_cfg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "sim.cfg"
    assert main(["simulate", "config", "-o", str(path), "--seed", "3"]) == 0
    return path


def _snap(core: PyDeviceCore, objective: str) -> tuple[np.ndarray, float]:
    core.setROI(0, 0, 96, 80)
    core.setConfig("Objective", objective)
    core.setXYPosition(40.0, -25.0)
    core.setPosition(0.5)
    core.snapImage()
    return np.array(core.getImage()), float(core.getPixelSizeUm())


def test_config_file_reproduces_the_simulator_with_per_objective_pixel_sizes(
    sim_cfg: Path,
) -> None:
    text = sim_cfg.read_text()
    assert "#py pyDevice,Scope,simulators.devices,SimScope" in text
    assert "PixelSize_um,Res100x,0.074\n" in text  # no float noise
    from_file, simulated = load_config(sim_cfg), make_core(seed=3)
    for objective, pixel_um in (("40x", 0.185), ("100x", 0.074), ("40x", 0.185)):
        a, px_a = _snap(from_file, objective)
        b, px_b = _snap(simulated, objective)
        assert px_a == px_b == pytest.approx(pixel_um)
        assert a.shape == (80, 96, 3)
        np.testing.assert_array_equal(a, b)
    truth = microscope_of(from_file)
    assert truth.seed == 3
    assert truth.snap_log[-1].objective == "40x"


def test_saved_configuration_loads_again_with_the_same_settings(tmp_path: Path) -> None:
    core = make_core(seed=5, specimen="usaf", imperfections=False, sensor=(128, 160))
    core.saveSystemConfiguration(str(tmp_path / "saved.cfg"))  # FocusDirection,Z,1 included
    again = load_config(tmp_path / "saved.cfg")
    truth = microscope_of(again)
    assert (truth.seed, truth.sensor) == (5, (128, 160))
    assert type(truth.specimen).__name__ == "UsafSpecimen"
    assert again.getImageWidth() == 160
    again.setConfig("Objective", "100x")
    assert again.getPixelSizeUm() == pytest.approx(0.074)
    a, _ = _snap(again, "100x")
    b, _ = _snap(core, "100x")
    np.testing.assert_array_equal(a, b)


def test_core_reports_rgb_and_bit_depth_as_micro_manager_does() -> None:
    from pymmcore_plus.metadata import summary_metadata

    core = make_core(sensor=(64, 64))
    assert core.getNumberOfComponents() == 4  # RGB: four components, like RGB32 / RGB64
    assert core.getBytesPerPixel() == 8
    assert core.getImageBitDepth() == 12
    info = summary_metadata(core)["image_infos"][0]
    assert (info["dtype"], info["plane_shape"], info["pixel_format"]) == (
        "uint16",
        (64, 64, 3),
        "RGB12",
    )
    core.setProperty("Camera", "PixelType", "16bit")
    assert (core.getNumberOfComponents(), core.getBytesPerPixel()) == (1, 2)


@pytest.mark.parametrize("suffix", [".ome.tif", ".ome.zarr"])
def test_pymmcore_plus_writers_store_the_simulators_frames(tmp_path: Path, suffix: str) -> None:
    import useq

    core = make_core(sensor=(48, 64))
    core.setProperty("Camera", "PixelType", "16bit")  # pymmcore-plus's sink writes 2-D planes
    frames: list[np.ndarray] = []
    core.mda.events.frameReady.connect(lambda img, *_: frames.append(np.array(img)))
    seq = useq.MDASequence(time_plan={"interval": 0, "loops": 2}, z_plan={"range": 1, "step": 1})
    out = tmp_path / f"run{suffix}"
    core.mda.run(seq, output=out)
    if suffix == ".ome.tif":
        with tifffile.TiffFile(out) as tif:
            data = tif.asarray()
            assert tif.series[0].axes == "TZYX"
            assert 'PhysicalSizeX="0.185"' in (tif.ome_metadata or "")
    else:
        data = _read_zarr(out)
    assert data.dtype == np.uint16
    np.testing.assert_array_equal(data.reshape(-1, 48, 64), np.stack(frames))


def _read_zarr(path: Path) -> np.ndarray:
    import tensorstore as ts

    store = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path / "0")}})
    return np.asarray(store.result().read().result())


def test_ndtiff_storage_with_rgb_fails_fast() -> None:
    from acquire.backends import python_scope
    from deepscope.errors import InputError

    start = time.perf_counter()
    with (
        python_scope(make_core(sensor=(32, 32))) as scope,
        pytest.raises(InputError, match=r"NDTiff storage .* cannot store this camera's RGB"),
    ):
        scope.acquisition(directory="never-written", name="x")
    assert time.perf_counter() - start < 30
    assert not Path("never-written").exists()


def test_acquire_through_the_config_file_equals_simulate(
    sim_cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(TINY_PLAN)
    runs = {}
    for name, scope in (("cfg", ["--mm-config", str(sim_cfg)]), ("sim", ["--seed", "3"])):
        out = tmp_path / name
        assert main(["acquire", str(plan), "-o", str(out), "--no-pause", "--json", *scope]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["failed"] == 0
        runs[name] = {p.name: tifffile.imread(p) for p in sorted((out / "fields").glob("*.tif"))}
    assert runs["cfg"].keys() == runs["sim"].keys()
    assert len(runs["cfg"]) >= 2
    for key, image in runs["cfg"].items():
        np.testing.assert_array_equal(image, runs["sim"][key])


def test_live_through_the_config_file(
    sim_cfg: Path, tmp_path: Path, save_tiny_model: Callable[[Path], Path]
) -> None:
    model = save_tiny_model(tmp_path / "model")
    cmd = [sys.executable, "-m", "app.cli", "live", str(model), "--mm-config", str(sim_cfg)]
    cmd += ["--headless", "--frames", "4", "--json", "--roi", "64", "--device", "cpu"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["frames_in"] >= 4
    assert summary["frames_enhanced"] >= 1


def test_gui_through_the_config_file(sim_cfg: Path, tmp_path: Path, qtbot, monkeypatch) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from gui.main_window import MainWindow

    monkeypatch.setenv("PYMM_SIGNALS_BACKEND", "psygnal")
    seen: list[tuple[int, int, float]] = []

    def close_windows() -> None:
        for w in [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]:
            core = w.core
            seen.append((core.getImageWidth(), core.getImageHeight(), core.getPixelSizeUm()))
            w.close()

    QTimer.singleShot(500, close_windows)
    assert main(["gui", "--mm-config", str(sim_cfg), "--roi", "96"]) == 0
    assert seen == [(96, 96, pytest.approx(0.185))]


BAD_CONFIGS = {
    "adapter": ("Property,Core,Initialize,0\nDevice,Cam,NoSuchAdapter,DCam\n", 2, "Cam"),
    "syntax": ("Property,Core,Initialize,0\nBogus,line,here\n", 2, ""),
    "module": ("#py pyDevice,Cam,no_such_module,Camera\n", 1, "Cam"),
    "class": ("#py pyDevice,Scope,simulators.devices,SimScop\n", 1, "Scope"),
    "no hub": ("#py pyDevice,Cam,simulators.devices,SimCamera\n", 1, "Cam"),
}


@pytest.mark.parametrize("kind", list(BAD_CONFIGS))
@pytest.mark.parametrize("command", ["acquire", "calibrate", "live", "gui"])
def test_bad_configuration_is_one_line_exit_3(
    kind: str,
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    save_tiny_model: Callable[[Path], Path],
) -> None:
    text, line, device = BAD_CONFIGS[kind]
    cfg = tmp_path / "bad.cfg"
    cfg.write_text(text)
    out = tmp_path / "out"
    plan = tmp_path / "plan.yaml"
    plan.write_text(TINY_PLAN)
    model = save_tiny_model(tmp_path / "model") if command == "live" else None
    argv = {
        "acquire": ["acquire", str(plan), "-o", str(out)],
        "calibrate": ["calibrate", "-o", str(out)],
        "live": ["live", str(model), "--record", str(out)],
        "gui": ["gui"],
    }[command]
    assert main([*argv, "--mm-config", str(cfg)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"deepscope: error: Micro-Manager configuration {cfg}, line {line}")
    if device:
        assert f"device '{device}'" in err[0]
    assert not out.exists()


def test_failed_load_leaves_nothing_loaded() -> None:
    with pytest.raises(HardwareError, match="line 2"):
        load_config(text="#py pyDevice,Scope,simulators.devices,SimScope\nBogus\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", ["acquire", "calibrate", "live", "gui"])
def test_zmq_port_with_nothing_listening_is_one_line_exit_3(
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    save_tiny_model: Callable[[Path], Path],
) -> None:
    port = _free_port()
    plan = tmp_path / "plan.yaml"
    plan.write_text(TINY_PLAN)
    model = save_tiny_model(tmp_path / "model") if command == "live" else None
    argv = {
        "acquire": ["acquire", str(plan), "-o", str(tmp_path / "ds")],
        "calibrate": ["calibrate", "-o", str(tmp_path / "p.yaml")],
        "live": ["live", str(model)],
        "gui": ["gui"],
    }[command]
    assert main([*argv, "--zmq-port", str(port)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]]
    assert f"no Micro-Manager ZMQ server on port {port}" in err[0]


def test_acquire_without_profile_warns_and_records_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(TINY_PLAN)
    assert main(["acquire", str(plan), "-o", str(tmp_path / "ds"), "--no-pause"]) == 0
    assert "no calibrated profile" in capsys.readouterr().err
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert info["calibrated"] is False


def test_dry_run_counts_fields_and_moves_nothing(
    sim_cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from acquire.backends import ScopeChoice, open_scope
    from acquire.dryrun import dry_run
    from acquire.plan import AcquisitionPlan
    from acquire.profile import MicroscopeProfile

    example = ROOT / "examples" / "plan_small.yaml"
    assert main(["acquire", str(example), "--dry-run", "--json", "--mm-config", str(sim_cfg)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["tiles"], out["targets"]) == (4, 4)  # 2x2 tiles, count 4
    assert out["pixel_size_um"] == {"40x": 0.185, "100x": 0.074}
    assert out["tile_fov_um"] == [pytest.approx(256 * 0.185)] * 2
    assert out["travel_um"] > 0
    assert out["calibrated"] is False
    plan = AcquisitionPlan.from_file(example)
    with open_scope(ScopeChoice(mm_config=sim_cfg)) as scope:
        before = (scope.position(), scope.core.get_property("Objective", "Label"))
        assert dry_run(plan, scope, MicroscopeProfile()).images == out["images"]
        assert microscope_of(scope.core.core).snap_log == []
        assert (scope.position(), scope.core.get_property("Objective", "Label")) == before


def test_info_reports_versions_devices_and_adapters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["versions"]["pymmcore-plus"] == __import__("pymmcore_plus").__version__
    assert info["versions"]["torch"] == torch.__version__
    assert len(info["cuda_devices"]) == torch.cuda.device_count()
    assert info["micromanager_adapters"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([64], (None, None, 64, 64)),
        ([8, 4, 32, 16], (8, 4, 32, 16)),
        ([0], None),
    ],
)
def test_one_roi_form(values: list[int], expected: tuple[int | None, ...] | None) -> None:
    from acquire.backends import roi_from_option, set_camera_roi

    roi = roi_from_option(values)
    got = None if roi is None else (roi.x, roi.y, roi.width, roi.height)
    assert got == expected
    core = make_core(sensor=(96, 128))
    set_camera_roi(core, roi)
    if roi is not None and roi.x is None:
        assert list(core.getROI()) == [32, 16, 64, 64]  # centred on the 128x96 sensor


def test_every_writing_command_takes_dash_o() -> None:
    from app.cli import build_parser

    parser = build_parser()
    for argv in (
        ["simulate", "snap", "-o", "x.ome.tif"],
        ["simulate", "config", "-o", "x.cfg"],
        ["calibrate", "-o", "p.yaml"],
        ["acquire", "plan.yaml", "-o", "ds"],
        ["register", "ds", "-o", "pairs"],
        ["train", "pairs", "-o", "model"],
        ["evaluate", "model", "pairs", "-o", "ev"],
        ["enhance", "model", "in.tif", "-o", "out"],
        ["demo", "-o", "demo"],
    ):
        assert parser.parse_args(argv).out is not None, argv


def test_configuration_without_a_camera_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from simulators.core import simulator_config

    cfg = tmp_path / "nocam.cfg"
    cfg.write_text(simulator_config().replace("#py Property,Core,Camera,Camera\n", ""))
    plan = tmp_path / "plan.yaml"
    plan.write_text(TINY_PLAN)
    assert main(["acquire", str(plan), "-o", str(tmp_path / "ds"), "--mm-config", str(cfg)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"deepscope: error: Micro-Manager configuration {cfg} sets no camera "
        "(a 'Property,Core,Camera,LABEL' line)"
    ]
    assert not (tmp_path / "ds").exists()
