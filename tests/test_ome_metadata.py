"""Every kind of file deepscope writes, read back by another tool (bioio-ome-tiff, tifffile).

Snaps, acquired fields, enhanced files and live recordings are checked for pixel size (no float
noise, TIFF resolution in centimetres), channels, stage position, objective, bit depth and
acquisition date.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import bioio_ome_tiff
import numpy as np
import pytest
import tifffile
from bioio import BioImage

from deepscope.cli import main

PLAN = (
    "region: {x_um: 0, y_um: 0, width_um: 20, height_um: 20}\n"
    "camera_roi: {width: 64, height: 64}\n"
    "targets: {count: 1, seed: 1, z: {slices: 2, step_um: 0.4}}\n"
)


@pytest.fixture(scope="module")
def files(
    tmp_path_factory: pytest.TempPathFactory, save_tiny_model: Callable[[Path], Path]
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ome")
    model = save_tiny_model(root / "model")
    snap = root / "snap.ome.tif"
    argv = ["simulate", "snap", "--objective", "100x", "--x", "12.5", "--y", "-7.25"]
    assert main([*argv, "--z", "0.4", "--roi", "48", "-o", str(snap)]) == 0
    plan = root / "plan.yaml"
    plan.write_text(PLAN)
    assert main(["acquire", str(plan), "-o", str(root / "ds"), "--no-pause"]) == 0
    assert main(["enhance", str(model), str(snap), "-o", str(root / "enhanced")]) == 0
    live = ["live", str(model), "--headless", "--frames", "2", "--roi", "32", "--device", "cpu"]
    assert main([*live, "--record", str(root / "rec")]) == 0
    fields = sorted((root / "ds" / "fields").glob("*.ome.tif"))
    return {
        "snap": snap,
        "tile": next(p for p in fields if p.name.startswith("tile")),
        "target": next(p for p in fields if not p.name.startswith("tile")),
        "enhanced": next((root / "enhanced").glob("*.ome.tif")),
        "live": next((root / "rec").rglob("*.ome.tif")),
    }


#: kind -> (pixel size um, objective model or None, planes)
EXPECTED = {
    "snap": (0.074, "100x", 1),
    "tile": (0.185, "40x", 1),
    "target": (0.074, "100x", 2),
    "enhanced": (0.0296, None, 1),
    "live": (0.185, "40x", 1),
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_bioio_reads_every_kind_of_file(files: dict[str, Path], kind: str) -> None:
    pixel_um, objective, planes = EXPECTED[kind]
    img = BioImage(files[kind], reader=bioio_ome_tiff.Reader)
    assert pixel_um == img.physical_pixel_sizes.X  # exactly: no 0.07400000000000001
    assert pixel_um == img.physical_pixel_sizes.Y
    assert img.dims.S == 3
    assert planes == img.dims.Z
    assert img.dtype == np.uint16
    ome = img.metadata
    image = ome.images[0]
    assert image.acquisition_date is not None
    pixels = image.pixels
    if kind != "live":  # the live recorder is not given the camera's bit depth
        assert pixels.significant_bits == 12
    assert all(p.position_x is not None and p.position_z is not None for p in pixels.planes)
    if objective is None:
        assert not ome.instruments or not ome.instruments[0].objectives
    else:
        assert ome.instruments[0].objectives[0].model == objective
    data = np.asarray(img.data)
    with tifffile.TiffFile(files[kind]) as tif:
        np.testing.assert_array_equal(data.reshape(tif.asarray().shape), tif.asarray())
        page = tif.pages[0]
        assert page.tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
        num, den = page.tags["XResolution"].value
        assert num / den == pytest.approx(1e4 / pixel_um, rel=1e-6)


def test_positions_and_provenance(files: dict[str, Path]) -> None:
    snap = BioImage(files["snap"], reader=bioio_ome_tiff.Reader).metadata.images[0].pixels
    plane = snap.planes[0]
    assert (plane.position_x, plane.position_y) == (12.5, -7.25)  # read back, no float noise
    enhanced = BioImage(files["enhanced"], reader=bioio_ome_tiff.Reader).metadata
    notes = {m.k: m.value for m in enhanced.structured_annotations.map_annotations[0].value.ms}
    assert notes["source_objective"] == "100x"
    assert notes["source_pixel_size_um"] == "0.074"
    assert notes["enhance_model"] == "model"
    ds = json.loads((files["tile"].parents[1] / "dataset.json").read_text())
    assert ds["tile_objective"]["pixel_size_um"] == 0.185
