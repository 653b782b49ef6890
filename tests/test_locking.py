"""One writer per dataset, pairs or model directory, checked with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acquire.plan import AcquisitionPlan
from app.cli import main
from deepscope.errors import LockedError
from deepscope.locking import LOCK_NAME, directory_lock

PLAN = {
    "name": "lock-test",
    "region": {"x_um": 0.0, "y_um": 0.0, "width_um": 60.0, "height_um": 60.0},
    "camera_roi": {"width": 128, "height": 128},
    "tiles": {"exposure_ms": 60},
    "targets": {"count": 4, "seed": 0, "exposure_ms": 60, "z": {"slices": 3, "step_um": 0.4}},
}
HOLD = "import sys, time; from deepscope.locking import directory_lock\n" + (
    "with directory_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)"
)


def _wait_for_holder(directory: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    lock = directory / LOCK_NAME
    while time.monotonic() < deadline and proc.poll() is None:
        if lock.is_file() and lock.read_text().startswith("pid "):
            return
        time.sleep(0.02)
    raise AssertionError(f"the first process never took the lock (exit {proc.poll()})")


def test_second_acquire_is_refused_naming_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.json"
    AcquisitionPlan.from_dict(PLAN).to_file(plan)
    out = tmp_path / "ds"
    cmd = ["acquire", str(plan), "--out", str(out), "--no-pause"]
    first = subprocess.Popen([sys.executable, "-m", "app.cli", *cmd], stderr=subprocess.PIPE)
    try:
        _wait_for_holder(out, first)
        assert main([*cmd, "--resume"]) == 2
        errors = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
        assert len(errors) == 1, errors
        err = errors[0]
        assert err.startswith("deepscope: error: ")
        assert f"in use by another deepscope process: pid {first.pid} (" in err
        assert "acquire" in err
    finally:
        _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr.decode()[-2000:]
    ids = [json.loads(line)["field_id"] for line in (out / "manifest.jsonl").read_text().split()]
    assert len(ids) == len(set(ids)) == 9 + 4  # nothing acquired twice
    assert (out / LOCK_NAME).read_text() == ""  # released; the file stays, empty


@pytest.mark.parametrize("command", ["register", "train"])
def test_register_and_train_lock_their_output(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    with subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        src = tmp_path / "src"
        src.mkdir()
        try:
            assert main([command, str(src), "--out", str(out)]) == 2
            assert f"pid {holder.pid}" in capsys.readouterr().err
        finally:
            holder.kill()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    with subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(LockedError, match=f"pid {holder.pid}"), directory_lock(out):
            pass
        os.kill(holder.pid, signal.SIGKILL)
    with directory_lock(out):  # the kernel released it with the process
        assert (out / LOCK_NAME).read_text().startswith(f"pid {os.getpid()}")


def test_a_refused_run_leaves_no_directory_behind(tmp_path: Path) -> None:
    out = tmp_path / "new"
    with pytest.raises(ValueError, match="checks failed"), directory_lock(out):
        raise ValueError("checks failed")
    assert not out.exists()


def test_partials_of_a_killed_run_are_removed_when_the_lock_is_taken(tmp_path: Path) -> None:
    out = tmp_path / "model"
    (out / "sub").mkdir(parents=True)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = out / f".model.safetensors.{gone.stdout.strip()}.partial"
    dead_below = out / "sub" / f".x.ome.tif.{gone.stdout.strip()}.partial"
    mine = out / f".checkpoint.safetensors.{os.getpid()}.partial"
    for p in (dead, dead_below, mine):
        p.write_bytes(b"torn")
    with directory_lock(out):
        assert not dead.exists()
        assert not dead_below.exists()
        assert mine.exists()  # its writer still runs
