"""Every subcommand against a read-only directory and an existing file as its output.

Each ends in one line ``deepscope: error: ...`` with exit code 2 (bad path) or 4 (disk), no
traceback, and leaves the existing file and the read-only directory as they were.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from dlm_pairs import write_pairs
from small_fs import read_only_dir  # noqa: F401 (fixture)
from test_acq_run import small_plan

from acquire.runner import run_acquisition
from app.cli import main
from deepscope.ometiff import ImageMeta, write_ome_tiff
from simulators import make_core


@pytest.fixture(scope="module")
def inputs(
    tmp_path_factory: pytest.TempPathFactory, save_tiny_model: Callable[[Path], Path]
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    plan = root / "plan.json"
    small_plan(targets={"count": 1, "seed": 2, "z": {"slices": 1, "step_um": 0.4}}).to_file(plan)
    run_acquisition(small_plan(targets={"count": 0}), root / "ds", make_core(seed=0))
    pairs = write_pairs(root / "pairs", n_train=1, n_val=1, n_test=1, lr_size=24)
    model = save_tiny_model(root / "model")
    snap = write_ome_tiff(
        root / "snap.ome.tif", np.zeros((24, 24, 3), np.uint16), ImageMeta(pixel_size_um=0.185)
    )
    return {"plan": plan, "ds": root / "ds", "pairs": pairs, "model": model, "snap": snap}


def _commands(i: dict[str, Path], out: Path) -> dict[str, list[str]]:
    """Each subcommand with *out* as the place it writes (a file or a directory)."""
    m, o = str(i["model"]), str(out)
    return {
        "simulate": ["simulate", "snap", "-o", f"{o}/snap.ome.tif"],
        "calibrate": ["calibrate", "--simulate", "--roi", "64", "--out", f"{o}/profile.yaml"],
        "acquire": ["acquire", str(i["plan"]), "--out", o, "--simulate", "--no-pause"],
        "register": ["register", str(i["ds"]), "--out", o],
        "train": ["train", str(i["pairs"]), "--out", o, "--steps", "1", "--device", "cpu"],
        "evaluate": ["evaluate", m, str(i["pairs"]), "--out", o, "--no-mtf"],
        "enhance": ["enhance", m, str(i["snap"]), str(i["snap"].with_name("x.ome.tif")), "-o", o],
        "export": ["export", m, "--format", "torchscript", "--out", f"{o}/model.pt"],
        "live": [
            "live",
            m,
            "--simulate",
            "--headless",
            "--frames",
            "2",
            "--roi",
            "0",
            "0",
            "64",
            "64",
            "--record",
            o,
        ],
        "demo": ["demo", "--out", o, "--headless", "--from-scratch"],
    }


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("deepscope: error: ")]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


COMMANDS = list(
    _commands({k: Path("x") for k in ("plan", "ds", "pairs", "model", "snap")}, Path("o"))
)


@pytest.mark.parametrize("command", COMMANDS)
def test_read_only_output_directory(
    command: str,
    inputs: dict[str, Path],
    read_only_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    if command == "enhance":
        inputs["snap"].with_name("x.ome.tif").write_bytes(inputs["snap"].read_bytes())
    argv = _commands(inputs, read_only_dir / "out")[command]
    before = _tree(inputs["ds"].parent)
    code = main(argv)
    line = _one_error_line(capsys.readouterr().err)
    assert code == 4, line
    assert "read-only" in line.lower() or "permission" in line.lower(), line
    assert list(read_only_dir.iterdir()) == []
    assert _tree(inputs["ds"].parent) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_existing_file_as_output(
    command: str, inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if command == "enhance":
        inputs["snap"].with_name("x.ome.tif").write_bytes(inputs["snap"].read_bytes())
    existing = tmp_path / "existing"
    existing.write_bytes(b"keep me")
    argv = _commands(inputs, existing)[command]
    before = _tree(inputs["ds"].parent)
    code = main(argv)
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2, line
    assert str(existing) in line, line
    assert existing.read_bytes() == b"keep me"
    assert _tree(inputs["ds"].parent) == before
