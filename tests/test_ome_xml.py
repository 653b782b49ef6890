"""The OME-XML template: rendered once by ome-types, filled per image, equal to a full render."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from ome_types import from_xml
from xsdata.formats.converter import converter

from deepscope.errors import InputError
from deepscope.ometiff import (
    ImageMeta,
    PlaneMeta,
    _render_ome_xml,
    _skeleton,
    _template,
    ome_xml,
)

LIVE = ImageMeta(pixel_size_um=0.185, objective="40x", name="live")
STACK = ImageMeta(
    pixel_size_um=0.074,
    z_step_um=0.4,
    objective="100x",
    magnification=100,
    na=1.4,
    immersion="Oil",
    significant_bits=12,
    annotations={"field_id": "t0001"},
)


def planes(n: int, *, x: float, exposure: float | None, t: float | None) -> tuple[PlaneMeta, ...]:
    return tuple(
        PlaneMeta(x_um=x, y_um=-3.0 - i, z_um=0.4 * i, exposure_ms=exposure, t_s=t)
        for i in range(n)
    )


# values the template must write exactly as ome-types does: NaN positions, floats that print in
# exponent form, binary noise that clean_um removes, no exposure or time, a non-UTC date
CASES = [
    (LIVE, (1, 64, 48, 3), planes(1, x=1.5, exposure=10.0, t=0.0), None),
    (LIVE, (1, 64, 48, 3), planes(1, x=float("nan"), exposure=None, t=1234.5678), None),
    (LIVE, (1, 64, 48, 3), planes(1, x=1e-7, exposure=1e21, t=None), None),
    (LIVE, (1, 8, 8, 1), planes(1, x=0.1 + 0.2, exposure=-0.0, t=3.0), None),
    (STACK, (3, 20, 30, 3), planes(3, x=-2e5, exposure=12.0, t=None), None),
    (STACK, (3, 20, 30, 3), planes(3, x=7.25, exposure=12.0, t=None), timezone(timedelta(hours=2))),
]


@pytest.mark.parametrize(("base", "shape", "planes_", "tz"), CASES)
def test_filled_template_is_byte_identical_to_the_ome_types_render(
    base: ImageMeta, shape: tuple[int, ...], planes_: tuple[PlaneMeta, ...], tz: timezone | None
) -> None:
    acquired = datetime(2026, 12, 5, 18, 30, 1, 250000, tzinfo=tz or UTC)
    meta = base.model_copy(update={"planes": planes_, "acquired_at": acquired})
    xml = ome_xml(shape, "uint16", meta)
    assert xml == _render_ome_xml(shape, "uint16", meta)
    pixels = from_xml(xml).images[0].pixels  # and ome-types reads the values back
    for plane, want in zip(pixels.planes, planes_, strict=True):
        assert (plane.position_x, plane.exposure_time, plane.delta_t) == pytest.approx(
            (want.x_um, want.exposure_ms, want.t_s), nan_ok=True
        )
    assert from_xml(xml).images[0].acquisition_date == acquired


def test_one_render_serves_every_frame_of_a_recording() -> None:
    _template.cache_clear()
    for i in range(50):
        meta = LIVE.model_copy(update={"planes": planes(1, x=0.5 * i, exposure=10.0, t=0.01 * i)})
        xml = ome_xml((1, 64, 48, 3), "uint16", meta)
        assert from_xml(xml).images[0].pixels.planes[0].position_x == 0.5 * i
    assert _template.cache_info().misses == 1
    # a frame without a date gets the time it is written
    date = from_xml(xml).images[0].acquisition_date
    assert date is not None
    assert abs((datetime.now(UTC) - date).total_seconds()) < 60


def test_a_name_that_contains_a_sentinel_is_rendered_in_full() -> None:
    sentinel = converter.serialize(-987_000_000.125)  # plane 0's x
    meta = LIVE.model_copy(
        update={
            "name": f"live {sentinel}",
            "planes": planes(1, x=2.0, exposure=None, t=None),
            "acquired_at": datetime(2026, 1, 1, tzinfo=UTC),
        }
    )
    _template.cache_clear()
    xml = ome_xml((1, 8, 8, 3), "uint16", meta)
    assert _template((1, 8, 8, 3), "uint16", _skeleton(meta).model_dump_json()) is None
    assert xml == _render_ome_xml((1, 8, 8, 3), "uint16", meta)
    assert from_xml(xml).images[0].name == f"live {sentinel}"
    assert math.isclose(from_xml(xml).images[0].pixels.planes[0].position_x or 0, 2.0)


def test_bad_shapes_and_types_are_refused_on_every_call() -> None:
    meta = LIVE.model_copy(update={"planes": planes(2, x=0.0, exposure=None, t=None)})
    for _ in range(2):  # the error is not cached away
        with pytest.raises(InputError, match="2 plane records for a stack of 1 planes"):
            ome_xml((1, 8, 8, 3), "uint16", meta)
    with pytest.raises(InputError, match="pixel type int32 not supported"):
        ome_xml((1, 8, 8, 3), "int32", LIVE)
