from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from model.config import ModelConfig, NetworkConfig, Normalisation
from model.network import DeepMicroscopyNet
from model.store import save_model

ROOT = Path(__file__).resolve().parents[1]


def test_headless_live_subprocess_exits_with_json(
    tmp_path: Path, save_tiny_model: Callable[[Path], Path]
) -> None:
    model = save_tiny_model(tmp_path / "model")
    cmd = [
        sys.executable,
        "-m",
        "app.cli",
        "live",
        str(model),
        "--simulate",
        "--headless",
        "--frames",
        "8",
        "--json",
        "--roi",
        "0",
        "0",
        "64",
        "48",
        "--exposure-ms",
        "5",
        "--device",
        "cpu",
        "--record",
        str(tmp_path / "rec"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["frames_in"] >= 8
    assert summary["recorded"] == summary["frames_in"]
    assert summary["frames_enhanced"] >= 1
    for key in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "camera_fps", "dropped"):
        assert key in summary
    assert summary["device"] == "cpu"
    assert len(list((tmp_path / "rec" / "raw").glob("*.ome.tif"))) == summary["frames_in"]


def test_live_cli_rejects_bad_values(tmp_path: Path) -> None:
    from app.cli import main

    assert main(["live", str(tmp_path / "missing"), "--headless", "--frames", "0"]) == 2
    assert main(["live", str(tmp_path / "missing"), "--headless"]) == 2


def test_live_cli_refuses_a_model_for_another_pixel_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main

    torch.manual_seed(0)
    net = DeepMicroscopyNet(NetworkConfig(base_channels=4, num_blocks=1, alpha=2))
    config = ModelConfig(
        network=net.config,
        normalisation=Normalisation.identity(3, 4095.0),
        input_pixel_size_um=0.074,  # made for 100x frames; the simulator starts at 40x
    )
    model = save_model(tmp_path / "model", net, config)
    base = ["live", str(model), "--simulate", "--headless", "--device", "cpu", "--json"]
    base += ["--roi", "0", "0", "64", "48", "--exposure-ms", "5", "--frames", "3"]
    assert main([*base, "--record", str(tmp_path / "rec")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("deepscope: error: camera pixel size 0.185 um")
    assert "--force" in err[0]
    assert not (tmp_path / "rec").exists()
    assert main([*base, "--force"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames_enhanced"] >= 1
    assert summary["paused"] is None


def test_second_recorder_into_the_same_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main

    torch.manual_seed(0)
    net = DeepMicroscopyNet(NetworkConfig(base_channels=4, num_blocks=1, alpha=2))
    model = save_model(
        tmp_path / "model",
        net,
        ModelConfig(network=net.config, normalisation=Normalisation.identity(3, 4095.0)),
    )
    rec = tmp_path / "rec"
    args = ["live", str(model), "--simulate", "--headless", "--device", "cpu", "--json"]
    args += ["--roi", "0", "0", "48", "32", "--exposure-ms", "5", "--record", str(rec)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args, "--frames", "400"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not (rec / "frames.jsonl").is_file():  # the first is recording
            assert first.poll() is None, "the first recorder ended before recording"
            assert time.monotonic() < deadline, "nothing recorded"
            time.sleep(0.01)
        assert main([*args, "--frames", "3"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert err[0].startswith(f"deepscope: error: {rec} is in use by another deepscope")
        assert f"pid {first.pid} (" in err[0]
        assert " live " in err[0]
    finally:
        out, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr.decode()[-2000:]
    summary = json.loads(out)
    frames = sorted((rec / "raw").glob("*.ome.tif"))
    assert len(frames) == summary["recorded"] == summary["frames_in"] >= 400
    # the recording is kept: a later recorder into the same directory is refused as well
    assert main([*args, "--frames", "3"]) == 2
    assert "already holds a recording" in capsys.readouterr().err
    assert sorted((rec / "raw").glob("*.ome.tif")) == frames
