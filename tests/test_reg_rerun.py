"""``deepscope register`` into a pairs directory that holds an earlier run.

The rerun leaves exactly the pair files its ``pairs.json`` names (none of the earlier run's
stale fields), and a rerun killed with SIGKILL leaves no ``pairs.json`` describing files it
had already replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli import main
from deepscope.formats.pairs import load_pairset
from deepscope.ometiff import read_ome_tiff
from model.registration import RegistrationOptions, register_dataset
from simulators.dataset import make_simulated_dataset, tissue_region

SENSOR = 256
REGION_UM = 2 * 0.85 * SENSOR * 0.185 + SENSOR * 0.185  # 3x3 tiles, 15 % overlap


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A simulated dataset with 8 z-stacks and its registration (every field accepted)."""
    root = tmp_path_factory.mktemp("rerun")
    sim = make_simulated_dataset(
        root / "ds",
        seed=3,
        sensor_px=SENSOR,
        n_targets=8,
        z_slices=3,
        centre_um=tissue_region(3, REGION_UM),
        min_tissue=0.5,
    )
    summary = register_dataset(sim.path, root / "pairs", RegistrationOptions())
    assert summary.accepted == 8
    return sim.path, root / "pairs"


def _stricter_ncc(pairs: Path) -> float:
    """A lowest NCC that the earlier run's three weakest pairs do not reach."""
    nccs = sorted(p.ncc for p in load_pairset(pairs).accepted() if p.ncc is not None)
    return round((nccs[2] + nccs[3]) / 2, 6)


def _assert_consistent(pairs: Path) -> list[str]:
    """``pairs/`` holds exactly the readable files ``pairs.json`` names; returns their ids."""
    pairset = load_pairset(pairs)
    named = {Path(rel).name for p in pairset.accepted() for rel in (p.lr, p.hr) if rel}
    assert sorted(f.name for f in (pairs / "pairs").iterdir()) == sorted(named)
    for name in named:
        assert read_ome_tiff(pairs / "pairs" / name)[0].size > 0
    qc = json.loads((pairs / "qc.json").read_text())
    assert [p["pair_id"] for p in qc["pairs"]] == [p.pair_id for p in pairset.pairs]
    return [p.pair_id for p in pairset.accepted()]


def test_rerun_leaves_only_the_pairs_of_the_new_run(
    first_run: tuple[Path, Path], tmp_path: Path
) -> None:
    dataset, earlier = first_run
    pairs = tmp_path / "pairs"
    shutil.copytree(earlier, pairs)
    strict = _stricter_ncc(pairs)
    assert main(["register", str(dataset), "--out", str(pairs), "--min-ncc", str(strict)]) == 0
    kept = _assert_consistent(pairs)
    assert 0 < len(kept) < 8  # some fields of the earlier run are no longer pairs
    gone = {p.pair_id for p in load_pairset(earlier).accepted()} - set(kept)
    assert not [f for f in (pairs / "pairs").iterdir() if f.name.split("_lr")[0] in gone]
    # back to the default threshold: every field is a pair again, nothing of the strict run lost
    assert main(["register", str(dataset), "--out", str(pairs)]) == 0
    assert len(_assert_consistent(pairs)) == 8


def test_rerun_killed_while_replacing_pairs_leaves_no_pairs_json(
    first_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset, earlier = first_run
    pairs = tmp_path / "pairs"
    shutil.copytree(earlier, pairs)
    before = {f.name: f.stat().st_ino for f in (pairs / "pairs").iterdir()}
    cmd = [sys.executable, "-m", "app.cli", "register", str(dataset), "--out", str(pairs)]
    cmd += ["--min-ncc", str(_stricter_ncc(pairs))]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    replaced = False
    while not replaced and time.monotonic() < deadline and proc.poll() is None:
        # a pair file renamed into place by the rerun has a new inode
        replaced = any(
            before.get(f.name) != f.stat().st_ino
            for f in (pairs / "pairs").iterdir()
            if not f.name.endswith(".partial")
        )
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the rerun finished before it could be killed"
    assert replaced
    # the earlier run's pairs.json and QC report no longer describe the directory: both gone
    assert not (pairs / "pairs.json").exists()
    assert not (pairs / "qc.json").exists()
    assert main(["train", str(pairs), "--out", str(tmp_path / "model")]) == 2
    err = capsys.readouterr().err
    assert "a registration into it did not finish, rerun deepscope register" in err
    assert not (tmp_path / "model").exists()
    assert main(["register", str(dataset), "--out", str(pairs)]) == 0
    assert len(_assert_consistent(pairs)) == 8
    assert not list(pairs.rglob("*.partial"))
