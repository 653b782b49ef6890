"""Resume after a real crash: a ``deepscope acquire`` subprocess killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from acquire.plan import AcquisitionPlan
from deepscope.formats.dataset import open_dataset

PLAN = {
    "name": "kill-test",
    "region": {"x_um": 0.0, "y_um": 0.0, "width_um": 60.0, "height_um": 60.0},
    "camera_roi": {"width": 128, "height": 128},
    "tiles": {"exposure_ms": 5},
    "targets": {"count": 4, "seed": 0, "z": {"slices": 3, "step_um": 0.4}},
}
TOTAL = 9 + 4  # 3x3 tiles, 4 targets


def _cmd(plan: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", "acquire", str(plan), "--out", str(out), *extra]


def _manifest_ids(out: Path) -> list[str]:
    path = out / "manifest.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["field_id"] for line in path.read_text().splitlines() if line]


def test_sigkill_mid_run_then_resume_gives_exactly_the_complete_set(tmp_path: Path) -> None:
    plan_path = tmp_path / "plan.json"
    AcquisitionPlan.from_dict(PLAN).to_file(plan_path)
    out = tmp_path / "ds"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        _cmd(plan_path, out, "--no-pause", "--seed", "7"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 60
    while len(_manifest_ids(out)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    before = _manifest_ids(out)
    assert 3 <= len(before) < TOTAL
    # a crash can also leave a temporary file behind: resume must not take it for a field
    (out / "fields" / ".target_000.ome.tif.4242.partial").write_bytes(b"torn write")

    res = subprocess.run(
        _cmd(plan_path, out, "--no-pause", "--seed", "7", "--resume", "--json"),
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    summary = json.loads(res.stdout)
    assert summary["done"] == TOTAL
    assert summary["skipped"] == len(set(before))
    ids = _manifest_ids(out)
    assert len(ids) == len(set(ids)) == TOTAL  # nothing acquired twice, nothing lost
    assert ids[: len(before)] == before
    ds = open_dataset(out)
    assert len(ds.done("tile")) == 9
    assert len(ds.done("target")) == 4
    for rec in ds.done():
        stack, meta = ds.load(rec)
        assert stack.shape[0] == len(meta.planes)
    files = {p.name for p in (out / "fields").iterdir()}
    assert files == {f"{i}.ome.tif" for i in ids}


def test_ctrl_c_stops_cleanly_and_resume_finishes(tmp_path: Path) -> None:
    plan_path = tmp_path / "plan.yaml"
    AcquisitionPlan.from_dict(PLAN).to_file(plan_path)
    out = tmp_path / "ds"
    proc = subprocess.Popen(
        _cmd(plan_path, out, "--no-pause", "--seed", "3"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(_manifest_ids(out)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)  # the engine shuts down: no hang at exit
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "rerun with --resume" in err.decode()
    before = _manifest_ids(out)
    assert 2 <= len(before) < TOTAL
    assert not list(out.rglob("*.partial"))
    res = subprocess.run(
        _cmd(plan_path, out, "--no-pause", "--seed", "3", "--resume", "--json"),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    ids = _manifest_ids(out)
    assert len(ids) == len(set(ids)) == TOTAL
