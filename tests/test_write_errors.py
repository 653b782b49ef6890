"""A field whose file cannot be written stops the run naming that field; no other field is
charged with the error, and none is imaged again."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_acq_run import small_plan

from acquire.runner import run_acquisition
from app.cli import main
from deepscope.errors import StorageError
from deepscope.formats.dataset import open_dataset
from simulators import make_core, microscope_of


def test_a_directory_in_the_way_stops_the_run_naming_its_field(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    blocker = out / "fields" / "target_001.ome.tif"

    def oil() -> bool:  # the dataset exists now: put a directory where target_001 goes
        blocker.mkdir()
        return True

    core = make_core(seed=1)
    with pytest.raises(StorageError, match=r"cannot write target_001 to .*target_001\.ome\.tif"):
        run_acquisition(small_plan(retries=2), out, core, pause_for_oil=oil)
    ds = open_dataset(out)
    assert ds.failed() == []
    assert sorted(r.field_id for r in ds.done("target")) == ["target_000"]
    # 4 tiles, target_000 and target_001 once (3 planes each), at most part of target_002
    assert 4 + 3 + 3 <= len(microscope_of(core).snap_log) < 4 + 3 + 3 + 3
    # from the command line: one line, exit code 4; resuming after the fix completes the set
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(small_plan(retries=2).model_dump_json())
    args = ["acquire", str(plan_file), "--out", str(out), "--resume", "--no-pause"]
    assert main(args) == 4
    blocker.rmdir()
    assert main(args) == 0
    assert len(open_dataset(out).done()) == 8
