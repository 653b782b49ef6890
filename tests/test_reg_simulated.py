"""Registration against the simulator's ground truth, robustness cases and the CLI."""

import json
import shutil

import numpy as np
import pytest

from app.cli import main
from deepscope.atomic import append_jsonl
from deepscope.formats.dataset import MANIFEST_NAME, open_dataset
from deepscope.formats.pairs import load_pair, load_pairset
from model.registration import RegistrationOptions, register_dataset
from simulators.dataset import glassy_region, make_simulated_dataset
from simulators.microscope import pixel_to_slide

SEED = 3
SENSOR = 512
N_DRAWN = 24  # 22 plain fields, then one defocused, one with a 20 um stage error
DEFOCUSED, MISPLACED, GLASS = "target_022", "target_023", "target_024"
# 3x3 tiles of 512 px at 0.185 um with 15 % overlap
REGION_UM = 2 * 0.85 * SENSOR * 0.185 + SENSOR * 0.185


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    rx, ry, gx, gy = glassy_region(SEED, REGION_UM, hole_um=SENSOR * 0.074 + 10)
    return make_simulated_dataset(
        tmp_path_factory.mktemp("regsim") / "ds",
        seed=SEED,
        sensor_px=SENSOR,
        n_targets=N_DRAWN,
        z_slices=1,
        centre_um=(rx, ry),
        min_tissue=0.7,
        extra_targets_um=[(gx, gy)],
        defocus_um={22: 6.0},
        record_error_um={23: (20.0, 0.0)},
    )


@pytest.fixture(scope="module")
def registered(sim, tmp_path_factory):
    out = tmp_path_factory.mktemp("pairs")
    summary = register_dataset(sim.path, out, RegistrationOptions(seed=1))
    return summary, out, load_pairset(out)


def _tile_from_slide(snap, x, y):
    """Tile pixel (col, row) of slide points, by inverting the tile's pixel_to_slide."""
    rows, cols = np.mgrid[0:SENSOR:64, 0:SENSOR:64]
    sx, sy = pixel_to_slide(snap, rows.ravel(), cols.ravel())
    design = np.column_stack([sx, sy, np.ones_like(sx)])
    coef, *_ = np.linalg.lstsq(design, np.column_stack([cols.ravel(), rows.ravel()]), rcond=None)
    return np.column_stack([x, y, np.ones_like(x)]) @ coef


def test_accuracy_against_ground_truth(sim, registered):
    _, _, pairset = registered
    plain = [p for p in pairset.pairs if int(p.field_id.split("_")[1]) < 22]
    accepted = [p for p in plain if p.accepted]
    assert len(accepted) >= 20, [p.reason for p in plain if not p.accepted]
    centre_err, rot_err, scale_err = [], [], []
    n = SENSOR
    rows, cols = np.meshgrid(np.linspace(0, n - 1, 5), np.linspace(0, n - 1, 5), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    for p in accepted:
        tile_snap = sim.truths[p.extra["tile"]]
        sx, sy = pixel_to_slide(sim.truths[p.field_id], rows, cols)
        truth = _tile_from_slide(tile_snap, sx, sy)  # true tile pixel of each 100x pixel
        est = np.array(p.extra["to_tile"])
        mapped = np.column_stack([cols, rows]) @ est[:, :2].T + est[:, 2]
        err_100x = (mapped - truth) * pairset.scale  # in 100x pixels
        centre_err.append(np.linalg.norm(err_100x[12]))  # grid point 12 is the field centre
        # rotation and scale of the true map, from two points along the field's x axis
        d_true = truth[4] - truth[0]
        d_est = mapped[4] - mapped[0]
        rot_err.append(
            np.degrees(np.arctan2(d_est[1], d_est[0]) - np.arctan2(d_true[1], d_true[0]))
        )
        scale_err.append(np.linalg.norm(d_est) / np.linalg.norm(d_true) - 1)
    rms = float(np.sqrt(np.mean(np.square(centre_err))))
    assert rms <= 0.25, centre_err
    assert np.max(np.abs(rot_err)) <= 0.05
    assert np.max(np.abs(scale_err)) <= 0.001


def test_stitching_matches_true_tile_offsets(sim):
    from model.registration.pipeline import _load_tiles
    from model.registration.sources import open_inputs

    tiles = _load_tiles(open_inputs(sim.path), 25.0 / 0.185)
    pos = tiles.mosaic.positions
    # a tile all of whose overlaps are bare glass can only be placed by its stage position
    linked = {k for e in tiles.mosaic.edges if e.kept for k in (e.i, e.j)}
    assert len(linked) >= len(tiles.ids) - 2
    ref = min(linked)
    stage_error_px = 2.0 / 0.185  # backlash 1.5 um plus repeatability, both tiles
    for k, tid in enumerate(tiles.ids):
        x, y = pixel_to_slide(sim.truths[tid], np.array([0.0]), np.array([0.0]))
        true_rel = _tile_from_slide(sim.truths[tiles.ids[ref]], x, y)[0]
        tol = 0.15 if k in linked else stage_error_px
        assert np.allclose(pos[k] - pos[ref], true_rel, atol=tol), (tid, pos[k] - pos[ref])


def test_pairs_files_and_qc(registered):
    summary, out, pairset = registered
    assert pairset.scale == 2.5
    assert pairset.hr_pixel_size_um == pytest.approx(0.185 / 2.5)
    assert pairset.max_value == 4095
    assert summary.accepted == len(pairset.accepted())
    for p in pairset.accepted()[:5]:
        lr, hr = load_pair(out, p)
        assert hr.shape[0] == lr.shape[0] * 2.5
        assert hr.shape[1] == lr.shape[1] * 2.5
        assert lr.dtype == hr.dtype == np.uint16
        assert lr.shape[2] == 3
        assert p.ncc is not None
        assert p.ncc > 0.9
        assert p.transform is not None
        assert p.transform.matrix is not None
    for name in ("qc.json", "qc.md", "qc_overview.png"):
        assert (out / name).stat().st_size > 0
    qc = json.loads((out / "qc.json").read_text())
    assert qc["accepted"] == summary.accepted
    assert not list(out.rglob("*.partial"))
    assert not (out / ".cache").exists()


def test_bad_fields_rejected_with_reasons(registered):
    _, _, pairset = registered
    by_id = {p.field_id: p for p in pairset.pairs}
    assert not by_id[GLASS].accepted
    assert by_id[GLASS].reason.startswith("empty field")
    assert not by_id[DEFOCUSED].accepted
    assert by_id[DEFOCUSED].reason.startswith("out of focus")
    assert by_id[GLASS].lr is None
    assert by_id[GLASS].hr is None
    # 20 um off, inside the 25 um default window: found at the right place
    assert by_id[MISPLACED].accepted, by_id[MISPLACED].reason
    assert by_id[MISPLACED].extra["prior_error_px"] == pytest.approx(20 / 0.185, abs=6)


def _subset(sim, dest, target_ids):
    """A copy of the dataset listing the tiles and only *target_ids*."""
    shutil.copytree(sim.path, dest)
    (dest / MANIFEST_NAME).unlink()
    for rec in open_dataset(sim.path).records:
        if rec.role == "tile" or rec.field_id in target_ids:
            append_jsonl(dest / MANIFEST_NAME, rec.model_dump(mode="json"))
    return dest


def test_misplaced_field_outside_small_window(sim, tmp_path):
    sub = _subset(sim, tmp_path / "sub", {MISPLACED})
    options = RegistrationOptions(search_radius_um=10.0)
    summary = register_dataset(sub, tmp_path / "pairs", options)
    (pair,) = load_pairset(tmp_path / "pairs").pairs
    assert summary.accepted == 0
    assert not pair.accepted
    assert pair.reason.startswith("outside the search window")


def test_splits_by_field_are_disjoint_and_seeded(registered):
    _, _, pairset = registered
    splits = {p.field_id: p.split for p in pairset.accepted()}
    assert set(splits.values()) == {"train", "val", "test"}
    assert len(splits) == len(pairset.accepted())


def test_cli_register_json(sim, tmp_path, capsys):
    sub = _subset(sim, tmp_path / "sub", {f"target_{i:03d}" for i in range(4)})
    code = main(
        [
            "register",
            str(sub),
            "--out",
            str(tmp_path / "p"),
            "--no-edof",
            "--split",
            "0.5",
            "0.25",
            "0.25",
            "--seed",
            "4",
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["fields"] == 4
    assert summary["accepted"] == 4
    assert summary["splits"] == {"train": 2, "val": 1, "test": 1}
    assert load_pairset(tmp_path / "p").seed == 4
    code = main(["register", str(tmp_path / "missing"), "--out", str(tmp_path / "q")])
    assert code == 2
    assert "not a directory" in capsys.readouterr().err
