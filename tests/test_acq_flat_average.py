"""Plan options for cleaner data: blank frames per objective, averaged 100x exposures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from skimage.restoration import estimate_sigma

from acquire.plan import AcquisitionPlan
from acquire.runner import run_acquisition
from deepscope.formats.dataset import open_dataset
from deepscope.ometiff import read_ome_tiff
from simulators import make_core, microscope_of
from simulators.dataset import glassy_region

SEED = 3


def _plan(**targets: Any) -> AcquisitionPlan:
    _, _, gx, gy = glassy_region(SEED, 100.0, hole_um=40.0)
    return AcquisitionPlan.from_dict(
        {
            "region": {"x_um": 100.0, "y_um": 200.0, "width_um": 30.0, "height_um": 30.0},
            "camera_roi": {"width": 128, "height": 128},
            "tiles": {"exposure_ms": 5},
            "targets": {"count": 2, "seed": 2, "exposure_ms": 8, "z": {"slices": 2}} | targets,
            "flat_field": {"x_um": gx, "y_um": gy, "frames": 3},
        }
    )


def _acquire(plan: AcquisitionPlan, out: Path) -> tuple[Any, list[Any]]:
    core = make_core(seed=SEED)
    summary = run_acquisition(plan, out, core, pause_for_oil=lambda: True)
    return summary, microscope_of(core).snap_log


def _noise(out: Path, field_id: str) -> float:
    ds = open_dataset(out)
    rec = next(r for r in ds.done("target") if r.field_id == field_id)
    stack, _ = read_ome_tiff(ds.path_of(rec))
    return float(estimate_sigma(stack[0].astype(float), channel_axis=-1, average_sigmas=True))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("flat_average")
    single = _acquire(_plan(), root / "single")
    averaged = _acquire(_plan(averages=4), root / "averaged")
    return root, single, averaged


def test_each_objective_takes_blank_frames_at_two_exposures(runs):
    root, (summary, log), _ = runs
    assert (summary.done, summary.failed, summary.total) == (summary.total, 0, 4 + 2 + 4)
    flats = {r.field_id: r for r in open_dataset(root / "single").done("flat")}
    assert set(flats) == {"flat_40x", "flat_40x_half", "flat_100x", "flat_100x_half"}
    assert {flats[f].objective for f in ("flat_40x", "flat_100x")} == {"40x", "100x"}
    # every blank frame is the mean of `frames` exposures, the half one at half the exposure
    exposures = sorted(s.exposure_ms for s in log if s.objective == "100x")
    assert exposures.count(4.0) == 3
    assert exposures.count(8.0) == 3 + 2 * 2  # blank frames, then 2 fields x 2 planes
    full, _ = read_ome_tiff(open_dataset(root / "single").path_of(flats["flat_100x"]))
    half, _ = read_ome_tiff(open_dataset(root / "single").path_of(flats["flat_100x_half"]))
    offset = 100.0
    ratio = (full.astype(float).mean() - offset) / (half.astype(float).mean() - offset)
    assert ratio == pytest.approx(2.0, rel=0.02)


def test_averaged_exposures_halve_the_noise_of_the_targets(runs):
    root, (_, log1), (summary, log4) = runs
    assert summary.failed == 0
    n1 = sum(s.objective == "100x" and s.exposure_ms == 8.0 for s in log1)
    n4 = sum(s.objective == "100x" and s.exposure_ms == 8.0 for s in log4)
    assert n4 - 3 == 4 * (n1 - 3)  # four exposures per plane (blank frames unchanged)
    ratio = _noise(root / "averaged", "target_000") / _noise(root / "single", "target_000")
    assert 0.4 < ratio < 0.65  # sqrt(1/4) = 0.5


def test_every_exposure_of_a_field_is_taken_where_the_stage_landed_once(runs):
    """The stage is commanded once per field: the repeated exposures and the planes of a z-stack
    are not blurred by re-landing (an open-loop stage lands ~0.3 um off on each move)."""
    _, _, (_, log4) = runs
    fields = {}
    for s in log4:
        if s.objective == "100x" and s.exposure_ms == 8.0:
            key = (round(s.commanded_x_um, 3), round(s.commanded_y_um, 3))
            fields.setdefault(key, set()).add((s.true_x_um, s.true_y_um))
    flat_x = round(glassy_region(SEED, 100.0, hole_um=40.0)[2], 3)
    stacks = {k: v for k, v in fields.items() if k[0] != flat_x}
    assert len(stacks) == 2
    assert all(len(poses) == 1 for poses in stacks.values()), stacks
