"""manifest.jsonl after a cut-short append: the next record starts its own line, none is lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_acq_run import small_plan

from acquire.runner import run_acquisition
from deepscope.atomic import append_jsonl, read_jsonl
from deepscope.errors import InputError
from deepscope.formats.dataset import open_dataset
from simulators import make_core


def test_append_after_a_torn_line_keeps_the_new_record(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"id": 1})
    append_jsonl(path, {"id": 2})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 5])  # the second append was cut short by a crash
    assert read_jsonl(path) == [{"id": 1}]
    append_jsonl(path, {"id": 3})
    assert read_jsonl(path) == [{"id": 1}, {"id": 3}]
    assert path.read_text().splitlines() == ['{"id":1}', '{"id":3}']
    # a complete record that only lost its newline is kept
    path.write_bytes(path.read_bytes()[:-1])
    append_jsonl(path, {"id": 4})
    assert read_jsonl(path) == [{"id": 1}, {"id": 3}, {"id": 4}]


def test_a_bad_line_before_the_end_is_an_error_not_skipped(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"id":1}\n{"id":2\n{"id":3}\n')
    with pytest.raises(InputError, match="line 2 is not JSON"):
        read_jsonl(path)
    path.write_bytes(b'{"id":1}\n\xff\xfe\n')
    with pytest.raises(InputError, match="not UTF-8"):
        read_jsonl(path)


def test_resume_after_a_torn_manifest_line_completes_every_field_once(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    run_acquisition(small_plan(), out, make_core(seed=1))
    manifest = out / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    assert len(lines) == 8
    # the run was killed while appending its 8th record: half of that line reached the disk
    torn = "\n".join(lines[:7]) + "\n" + lines[7][: len(lines[7]) // 2]
    manifest.write_text(torn)
    summary = run_acquisition(small_plan(), out, make_core(seed=1), resume=True)
    assert (summary.done, summary.failed, summary.skipped) == (8, 0, 7)
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(records) == 8
    assert len({r["field_id"] for r in records}) == 8
    assert len(open_dataset(out).done()) == 8


def test_swapped_field_files_are_caught(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    run_acquisition(small_plan(targets={"count": 0}), out, make_core(seed=1))
    a, b = out / "fields" / "tile_r00_c00.ome.tif", out / "fields" / "tile_r00_c01.ome.tif"
    a_bytes = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(a_bytes)
    ds = open_dataset(out)
    record = next(r for r in ds.done() if r.field_id == "tile_r00_c00")
    with pytest.raises(InputError, match="holds field 'tile_r00_c01'"):
        ds.load(record)
