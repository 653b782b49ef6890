from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from acquire.autofocus import FocusMap, best_focus, z_scan
from acquire.layout import sample_centres, serpentine_order, tile_grid
from acquire.plan import AcquisitionPlan, Region
from acquire.profile import MicroscopeProfile, StageLimits
from deepscope.errors import InputError
from deepscope.imaging import normalized_variance

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plan_small.yaml"


def _plan(**over: object) -> AcquisitionPlan:
    raw: dict[str, object] = {"region": {"x_um": 0, "y_um": 0, "width_um": 100, "height_um": 60}}
    raw.update(over)
    return AcquisitionPlan.from_dict(raw)


def test_example_plan_loads_with_defaults() -> None:
    plan = AcquisitionPlan.from_file(EXAMPLE)
    assert plan.tiles.objective == "40x"
    assert plan.targets.z.slices == 3
    assert plan.tiles.overlap == pytest.approx(0.15)
    assert _plan().targets.z.offsets_um() == pytest.approx([-0.8, -0.4, 0.0, 0.4, 0.8])


def test_yaml_json_round_trip_keeps_hash(tmp_path: Path) -> None:
    plan = AcquisitionPlan.from_file(EXAMPLE)
    for name in ("p.json", "p.yaml"):
        plan.to_file(tmp_path / name)
        again = AcquisitionPlan.from_file(tmp_path / name)
        assert again == plan
        assert again.plan_hash() == plan.plan_hash()
    assert _plan(serpentine=False).plan_hash() != _plan().plan_hash()


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"targets": {"z": {"slices": 3, "step_um": 0}}}, "targets.z.step_um"),
        ({"targets": {"z": {"slices": 3, "step_um": -0.4}}}, "targets.z.step_um"),
        ({"tiles": {"overlap": 1.2}}, "tiles.overlap"),
        ({"targets": {"centres_um": [[500, 10]]}}, "outside the region"),
        ({"targets": {"centres_um": [[5, 5]], "count": 2}}, "either centres_um or count"),
        ({"exposure": 3}, "exposure"),
    ],
)
def test_bad_plan_fields_give_one_line_errors(over: dict[str, object], needle: str) -> None:
    with pytest.raises(InputError, match=needle) as info:
        _plan(**over)
    assert "\n" not in str(info.value)


def test_plan_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be read"):
        AcquisitionPlan.from_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(InputError, match="mapping"):
        AcquisitionPlan.from_file(bad)
    with pytest.raises(Exception, match="frozen"):
        _plan().name = "x"  # type: ignore[misc]


def test_tile_grid_covers_region_with_overlap_in_serpentine_order() -> None:
    region = Region(x_um=0, y_um=0, width_um=100, height_um=60)
    tiles = tile_grid(region, (40.0, 40.0), 0.15, "40x")
    rows = sorted({t.grid_row for t in tiles})
    cols = sorted({t.grid_col for t in tiles})
    assert (len(rows), len(cols)) == (2, 3)
    xs = sorted({round(t.x_um, 6) for t in tiles})
    assert np.diff(xs) == pytest.approx([34.0, 34.0])  # pitch = 40 * (1 - 0.15)
    assert min(xs) - 20 <= 0
    assert max(xs) + 20 >= 100
    # serpentine: second row runs backwards
    assert [t.grid_col for t in tiles] == [0, 1, 2, 2, 1, 0]
    assert len({t.field_id for t in tiles}) == 6


def test_sampled_centres_are_seeded_inside_and_apart() -> None:
    region = Region(x_um=0, y_um=0, width_um=200, height_um=200)
    a = sample_centres(region, 6, (20.0, 20.0), seed=3, margin_um=5)
    assert a == sample_centres(region, 6, (20.0, 20.0), seed=3, margin_um=5)
    assert a != sample_centres(region, 6, (20.0, 20.0), seed=4, margin_um=5)
    for i, (x, y) in enumerate(a):
        assert 15 <= x <= 185
        assert 15 <= y <= 185
        for x2, y2 in a[i + 1 :]:
            assert abs(x - x2) >= 20 or abs(y - y2) >= 20
    only_right = sample_centres(region, 3, (20.0, 20.0), seed=3, accept=lambda x, y: x > 100)
    assert len(only_right) == 3
    assert all(x > 100 for x, _ in only_right)
    assert sample_centres(region, 3, (20.0, 20.0), seed=3, accept=lambda x, y: False) == []


def test_serpentine_order_alternates_rows() -> None:
    pts = [(0.0, 0.0), (10.0, 0.0), (0.0, 30.0), (10.0, 30.0)]
    assert serpentine_order(pts, 20.0) == [(0.0, 0.0), (10.0, 0.0), (10.0, 30.0), (0.0, 30.0)]


def test_autofocus_finds_peak_and_plane() -> None:
    rng = np.random.default_rng(0)
    texture = rng.uniform(0, 1, (64, 64))

    def snap_at(z: float) -> np.ndarray:
        contrast = np.exp(-((z - 1.3) ** 2) / 2.0)
        return 100 + 50 * contrast * texture

    assert z_scan(snap_at, 0.0, 8.0, 1.0) == pytest.approx(1.3, abs=0.15)
    # focus beyond the end of the scan: the scan is extended towards it
    assert z_scan(snap_at, -3.0, 4.0, 0.5) == pytest.approx(1.3, abs=0.15)
    assert z_scan(snap_at, -3.0, 4.0, 0.5, extend=0) == pytest.approx(-1.0)
    assert normalized_variance(np.full((8, 8), 5.0)) == 0.0
    assert best_focus([0, 1, 2], [1, 3, 1]) == pytest.approx(1.0)
    plane = FocusMap([(0, 0, 1.0), (10, 0, 2.0), (0, 10, 0.0), (10, 10, 1.0)])
    assert plane(5, 5) == pytest.approx(1.0)
    assert plane(20, 0) == pytest.approx(3.0)


def test_profile_round_trip_and_limits(tmp_path: Path) -> None:
    prof = MicroscopeProfile()
    prof.to_file(tmp_path / "scope.yaml")
    assert MicroscopeProfile.from_file(tmp_path / "scope.yaml") == prof
    with pytest.raises(InputError, match="'60x' is unknown; expected one of: 40x, 100x"):
        prof.objective("60x")
    with pytest.raises(InputError, match="outside the stage limits"):
        StageLimits(x_max_um=10).check("tile", 20, 0)
