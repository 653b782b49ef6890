"""``deepscope train`` / ``evaluate`` argument handling (no training here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import build_parser, main
from deepscope.errors import InputError
from model.training.cli import train_config_from_args
from model.training.config import TrainConfig


def test_flags_override_config_file(tmp_path: Path) -> None:
    cfg_file = tmp_path / "t.json"
    cfg_file.write_text(TrainConfig(steps=7, lr=3e-4, seed=5).model_dump_json())
    args = build_parser().parse_args(
        ["train", "P", "--out", "M", "--config", str(cfg_file), "--lr", "1e-3", "--paper-network"]
    )
    cfg = train_config_from_args(args)
    assert (cfg.steps, cfg.lr, cfg.seed, cfg.global_skip) == (7, 1e-3, 5, False)
    defaults = train_config_from_args(build_parser().parse_args(["train", "P", "--out", "M"]))
    assert defaults == TrainConfig()
    assert (defaults.batch_size, defaults.lr, defaults.loss, defaults.patch_size) == (
        16,
        1e-3,
        "l1_ssim",
        60,
    )


def test_bad_values_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "m"), "--lr", "-1"]) == 2
    err = capsys.readouterr().err
    assert "lr" in err
    assert len(err.strip().splitlines()) == 1
    for bad in (["--loss", "ssim2"], ["--steps", "0"], ["--minutes", "0"]):
        assert main(["train", str(tmp_path), "--out", str(tmp_path / "m"), *bad]) == 2
        err = capsys.readouterr().err
        assert bad[0][2:] in err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()
    code = main(["train", str(tmp_path / "none"), "--out", str(tmp_path / "m")])
    assert code != 0
    assert "pairs.json is missing" in capsys.readouterr().err
    code = main(["evaluate", str(tmp_path / "nomodel"), str(tmp_path), "--no-mtf"])
    assert code != 0
    assert "pairs.json is missing" in capsys.readouterr().err


def test_the_command_line_hands_the_simulator_to_the_areas() -> None:
    """acquire and model do not import the simulator: the deepscope parser passes it in."""
    from acquire.backends import ScopeChoice, open_core
    from simulators import make_core, microscope_of
    from simulators.targets import SimulatedUsafTarget

    evaluate = build_parser().parse_args(["evaluate", "M", "P"])
    assert isinstance(evaluate.bar_target, SimulatedUsafTarget)
    live = build_parser().parse_args(["live", "M", "--seed", "4"])
    assert live.simulator is make_core
    core = open_core(ScopeChoice.from_args(live))
    assert microscope_of(core).seed == 4
    with pytest.raises(InputError, match="no microscope given"):
        open_core(ScopeChoice())
