"""Plans and output directories are checked before anything is created or any stage moves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_acq_run import small_plan

from acquire.backends import Scope
from acquire.runner import run_acquisition
from deepscope.errors import InputError
from simulators import make_core, microscope_of


def test_an_impossible_exposure_creates_nothing_and_the_fix_is_accepted(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    bad = small_plan(targets={"count": 1, "exposure_ms": 20_000})
    with pytest.raises(InputError, match="exposure 20000"):
        run_acquisition(bad, out, make_core(seed=0))
    assert not out.exists()
    summary = run_acquisition(small_plan(targets={"count": 1}), out, make_core(seed=0))
    assert summary.done == 5


def test_a_different_plan_is_refused_before_the_turret_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ds"
    run_acquisition(small_plan(targets={"count": 0}), out, make_core(seed=0))
    moves: list[Any] = []
    real = Scope.set_objective
    monkeypatch.setattr(Scope, "set_objective", lambda self, *a: (moves.append(a), real(self, *a)))
    core = make_core(seed=0)
    with pytest.raises(InputError, match="different plan"):
        run_acquisition(small_plan(), out, core, resume=True)
    with pytest.raises(InputError, match="pass --resume"):
        run_acquisition(small_plan(targets={"count": 0}), out, core)
    assert moves == []
    assert microscope_of(core).snap_log == []
