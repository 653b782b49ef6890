"""``deepscope simulate snap``."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from deepscope.ometiff import read_ome_tiff


def test_snap_writes_ome_tiff_with_metadata(tmp_path, capsys):
    out = tmp_path / "snap.ome.tif"
    args = [
        "simulate",
        "snap",
        "--objective",
        "100x",
        "--x",
        "12.5",
        "--y",
        "-8",
        "--z",
        "0.4",
        "--exposure-ms",
        "20",
        "--roi",
        "0",
        "0",
        "96",
        "64",
        "-o",
        str(out),
        "--json",
    ]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    data, meta = read_ome_tiff(out)
    assert data.shape == (1, 64, 96, 3)
    assert summary["shape"] == [64, 96, 3]
    assert meta.pixel_size_um == pytest.approx(0.074)
    assert (meta.objective, meta.magnification, meta.na, meta.immersion) == (
        "100x",
        100,
        1.4,
        "Oil",
    )
    plane = meta.planes[0]
    assert (plane.x_um, plane.y_um, plane.z_um, plane.exposure_ms) == (12.5, -8.0, 0.4, 20.0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--objective", "60x"], "objective '60x' is unknown"),
        (["--x", "99999"], "beyond the travel limits"),
        (["--exposure-ms", "-1"], "exposure -1.0 ms"),
        (["--roi", "2000", "0", "100", "100"], "outside the 2048x2048 sensor"),
    ],
)
def test_snap_rejects_bad_input_with_one_line(tmp_path, capsys, extra, message):
    out = tmp_path / "x.ome.tif"
    assert main(["simulate", "snap", "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()
