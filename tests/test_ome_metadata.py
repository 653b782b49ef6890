"""Every kind of file deepscope writes, read back by another tool (bioio-ome-tiff, tifffile).

Snaps, acquired fields, enhanced files and live recordings are checked for pixel size (no float
noise, TIFF resolution in centimetres), channels, stage position, objective, bit depth and
acquisition date; registered pair files for the objective, date and true z of their sources.
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

from acquire.profile import Calibration, MicroscopeProfile
from app.cli import main
from simulators import make_core, microscope_of

PLAN = (
    "region: {x_um: 0, y_um: 0, width_um: 20, height_um: 20}\n"
    "camera_roi: {width: 64, height: 64}\n"
    "targets: {count: 1, seed: 1, z: {slices: 2, step_um: 0.4}}\n"
)


PAIRS_PLAN = (
    "region: {{x_um: 0, y_um: 0, width_um: 80, height_um: 80}}\n"
    "camera_roi: {{width: 256, height: 256}}\n"
    "focus_z_um: {focus_z}\n"
    "targets: {{count: 2, seed: 1, z: {{slices: 3, step_um: 0.4}}}}\n"
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
    # registered pairs, from tiles in focus at the 40x's own z (the simulator's true offsets)
    lo, hi = (microscope_of(make_core(sensor=(64, 64))).objectives[o] for o in ("40x", "100x"))
    cal = Calibration(
        dx_um=hi.offset_x_um - lo.offset_x_um,
        dy_um=hi.offset_y_um - lo.offset_y_um,
        dz_um=hi.parfocal_z_um - lo.parfocal_z_um,
    )
    MicroscopeProfile(calibration=cal).to_file(root / "profile.yaml")
    plan.write_text(PAIRS_PLAN.format(focus_z=round(lo.parfocal_z_um, 2)))
    acquire = ["acquire", str(plan), "-o", str(root / "pds"), "--no-pause"]
    assert main([*acquire, "--profile", str(root / "profile.yaml")]) == 0
    assert main(["register", str(root / "pds"), "-o", str(root / "pairs")]) == 0
    fields = sorted((root / "ds" / "fields").glob("*.ome.tif"))
    return {
        "snap": snap,
        "tile": next(p for p in fields if p.name.startswith("tile")),
        "target": next(p for p in fields if not p.name.startswith("tile")),
        "enhanced": next((root / "enhanced").glob("*.ome.tif")),
        "live": next((root / "rec").rglob("*.ome.tif")),
        "lr": next((root / "pairs" / "pairs").glob("*_lr.ome.tif")),
        "hr": next((root / "pairs" / "pairs").glob("*_hr.ome.tif")),
    }


#: kind -> (pixel size um, objective model or None, planes)
EXPECTED = {
    "snap": (0.074, "100x", 1),
    "tile": (0.185, "40x", 1),
    "target": (0.074, "100x", 2),
    "enhanced": (0.0296, None, 1),
    "live": (0.185, "40x", 1),
    "lr": (0.185, "40x", 1),
    "hr": (0.074, "100x", 1),
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


def _notes(path: Path) -> dict[str, str]:
    """The key-value annotations of a file, as bioio reads them."""
    ome = BioImage(path, reader=bioio_ome_tiff.Reader).metadata
    return {m.k: m.value for m in ome.structured_annotations.map_annotations[0].value.ms}


def test_positions_and_provenance(files: dict[str, Path]) -> None:
    snap = BioImage(files["snap"], reader=bioio_ome_tiff.Reader).metadata.images[0].pixels
    plane = snap.planes[0]
    assert (plane.position_x, plane.position_y) == (12.5, -7.25)  # read back, no float noise
    notes = _notes(files["enhanced"])
    assert notes["source_objective"] == "100x"
    assert notes["source_pixel_size_um"] == "0.074"
    assert notes["enhance_model"] == "model"
    ds = json.loads((files["tile"].parents[1] / "dataset.json").read_text())
    assert ds["tile_objective"]["pixel_size_um"] == 0.185


@pytest.mark.parametrize("kind", ["lr", "hr"])
def test_pair_files_carry_objective_date_and_true_z_of_their_sources(
    files: dict[str, Path], kind: str
) -> None:
    pairs = files[kind].parents[1]
    notes = _notes(files[kind])  # the pair's field and the tile its 40x crop was cut from
    source_id = notes["field_id"] if kind == "hr" else notes["tile_id"]
    source = BioImage(pairs.parent / "pds" / "fields" / f"{source_id}.ome.tif").metadata
    own = BioImage(files[kind], reader=bioio_ome_tiff.Reader).metadata
    src_image, image = source.images[0], own.images[0]
    assert image.acquisition_date == src_image.acquisition_date  # when the source was taken
    src_obj, obj = source.instruments[0].objectives[0], own.instruments[0].objectives[0]
    assert (obj.model, obj.nominal_magnification, obj.lens_na, obj.immersion) == (
        src_obj.model,
        src_obj.nominal_magnification,
        src_obj.lens_na,
        src_obj.immersion,
    )
    zs = [p.position_z for p in src_image.pixels.planes]
    # the tile's own z (the 40x focus, about -1.77 um); the EDOF target's: its stack's centre
    assert image.pixels.planes[0].position_z == pytest.approx(float(np.mean(zs)))
    assert abs(image.pixels.planes[0].position_z) > 0.3  # not the former placeholder 0.0
