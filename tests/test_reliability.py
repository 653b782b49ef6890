"""End-to-end reliability: the demo and its resume, kill -9 during registration, bad inputs.

One small demo run (simulated scope -> acquisition -> registration -> training -> evaluation ->
live) is shared by the tests in this module; every bad-input test then checks that the command
fails with one clear line, a non-zero exit code, and that nothing on disk changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from app.demo import DEMO_SPLIT
from deepscope.errors import InputError
from deepscope.formats.dataset import open_dataset
from model.config import ModelConfig, NetworkConfig
from model.network import DeepMicroscopyNet
from model.store import save_model

DEEPSCOPE = [sys.executable, "-m", "app.cli"]
DEMO_ARGS = [
    *("--fields", "8", "--roi", "320", "--steps", "2", "--live-seconds", "1"),
    *("--headless", "--json"),
]


def run_cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DEEPSCOPE, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below *root*."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("deepscope: error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo")
    proc = run_cli("demo", "--out", out, *DEMO_ARGS, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads(proc.stdout)


def test_demo_writes_every_output(demo: tuple[Path, dict]) -> None:
    out, summary = demo
    for key, path in summary["outputs"].items():
        assert Path(path).exists(), f"{key}: {path} missing"
    ds = open_dataset(out / "dataset")
    assert len(ds.done("target")) + len(ds.failed()) == 8
    assert summary["figures"]["live"]["frames_in"] > 0
    assert summary["figures"]["live"]["frames_enhanced"] > 0
    scores = summary["figures"]["evaluate"]
    assert {"bicubic_ssim", "network_ssim", "network_x2_ssim"} <= set(scores)
    assert {"truth_bicubic_ssim", "truth_network_ssim"} <= set(scores)
    # the model fine-tuning started from (the shipped reference) is scored beside it
    assert summary["figures"]["train"]["init"] == scores["init"]["model"]
    assert {"network_ssim", "truth_network_ssim"} <= set(scores["init"])
    assert (out / "evaluation" / "init" / "evaluation.md").is_file()


def test_demo_rerun_resumes_without_touching_acquired_data(demo: tuple[Path, dict]) -> None:
    out, first = demo
    before = tree_digest(out / "dataset")
    proc = run_cli("demo", "--out", out, *DEMO_ARGS, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads(proc.stdout)
    acquired = again["figures"]["acquire"]
    assert acquired["skipped"] == first["figures"]["acquire"]["done"] == acquired["total"]
    assert tree_digest(out / "dataset") == before  # nothing acquired was rewritten
    assert again["figures"]["register"].get("resumed") is True


def test_kill_during_registration_then_rerun_gives_the_same_pairs(
    demo: tuple[Path, dict], tmp_path: Path
) -> None:
    out, _ = demo
    pairs = tmp_path / "pairs"
    split = [str(f) for f in DEMO_SPLIT]  # the demo's own split, so the pairs compare
    proc = subprocess.Popen(
        [*DEEPSCOPE, "register", str(out / "dataset"), "--out", str(pairs), "--split", *split],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    wrote_pairs = False
    while time.monotonic() < deadline and proc.poll() is None:
        if (pairs / "pairs").is_dir() and any((pairs / "pairs").iterdir()):
            wrote_pairs = True
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the kill landed mid-run: pair files were being written, the process died of the signal
    # (it had not finished), and the pairs set was never declared complete
    assert wrote_pairs, "registration wrote no pair files before the kill"
    assert proc.returncode == -signal.SIGKILL, f"registration ended first ({proc.returncode})"
    assert not (pairs / "pairs.json").exists()
    done = run_cli("register", out / "dataset", "--out", pairs, "--split", *split)
    assert done.returncode == 0, done.stderr[-2000:]
    reference = json.loads((out / "pairs" / "pairs.json").read_text())
    resumed = json.loads((pairs / "pairs.json").read_text())
    assert [p["pair_id"] for p in resumed["pairs"]] == [p["pair_id"] for p in reference["pairs"]]
    assert [p["split"] for p in resumed["pairs"]] == [p["split"] for p in reference["pairs"]]
    assert not list(pairs.rglob("*.partial"))
    for p in resumed["pairs"]:
        if p["accepted"]:
            assert (pairs / p["lr"]).is_file()
            assert (pairs / p["hr"]).is_file()


def test_truncated_tiff_and_non_image_are_refused(demo: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = demo
    field = next((out / "dataset" / "fields").glob("*.ome.tif"))
    cut = tmp_path / "cut.ome.tif"
    cut.write_bytes(field.read_bytes()[:2000])
    text = tmp_path / "notes.ome.tif"
    text.write_text("not an image\n")
    before = tree_digest(out / "model")
    for bad in (cut, text):
        proc = run_cli("enhance", out / "model", bad, "-o", tmp_path / "enhanced")
        assert_one_line_error(proc, bad.name)
    assert tree_digest(out / "model") == before
    assert not (tmp_path / "enhanced").exists() or not any((tmp_path / "enhanced").iterdir())


def test_files_without_pixel_sizes_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    for name in ("a_40x.tif", "b_100x.tif"):
        tifffile.imwrite(folder / name, np.zeros((64, 64, 3), np.uint16), photometric="rgb")
    before = tree_digest(folder)
    proc = run_cli("register", folder, "--out", tmp_path / "pairs")
    assert_one_line_error(proc)
    assert tree_digest(folder) == before


def test_model_for_another_scale_is_refused(demo: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = demo
    other = tmp_path / "model_x2"
    save_model(other, DeepMicroscopyNet(NetworkConfig(scale=2.0)), ModelConfig())
    proc = run_cli("evaluate", other, out / "pairs", "--out", tmp_path / "eval", "--no-mtf")
    assert_one_line_error(proc, "scale")


def test_pickled_weights_are_never_loaded(demo: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = demo
    evil = tmp_path / "evil_model"
    shutil.copytree(out / "model", evil)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    (evil / "model.safetensors").write_bytes(pickle.dumps(Payload()))
    field = next((out / "dataset" / "fields").glob("tile*.ome.tif"))
    proc = run_cli("enhance", evil, field, "-o", tmp_path / "enhanced")
    assert_one_line_error(proc, "safetensors")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"targets": {"z": {"slices": 3, "step_um": 0.0}}}, "step_um"),
        ({"region": {"x_um": 1e6, "y_um": 0.0, "width_um": 100.0, "height_um": 100.0}}, "limit"),
        ({"tiles": {"objective": "60x"}}, "60x"),
    ],
)
def test_impossible_plans_are_refused_before_anything_moves(
    tmp_path: Path, change: dict, needle: str
) -> None:
    plan = {
        "name": "bad",
        "region": {"x_um": 0.0, "y_um": 0.0, "width_um": 60.0, "height_um": 60.0},
        "camera_roi": {"width": 128, "height": 128},
        "targets": {"count": 2, "z": {"slices": 3, "step_um": 0.4}},
    }
    for key, value in change.items():
        plan[key] = {**plan.get(key, {}), **value}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    proc = run_cli("acquire", path, "--out", tmp_path / "ds", "--simulate", "--no-pause")
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "ds" / "manifest.jsonl").exists()


def test_dataset_paths_cannot_escape_the_dataset(demo: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = demo
    ds_dir = tmp_path / "ds"
    shutil.copytree(out / "dataset", ds_dir)
    manifest = ds_dir / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    record = json.loads(lines[0])
    record["path"] = "../../../etc/passwd"
    lines[0] = json.dumps(record)
    manifest.write_text("\n".join(lines) + "\n")
    ds = open_dataset(ds_dir)
    bad = next(r for r in ds.records if r.field_id == record["field_id"])
    with pytest.raises(InputError, match="outside"):
        ds.load(bad)
    proc = run_cli("register", ds_dir, "--out", tmp_path / "pairs")
    assert_one_line_error(proc, "outside")
