"""Where the fields go: the tile grid over the region and the target fields inside it."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from acquire.plan import Region
from deepscope import limits
from deepscope.formats.dataset import Role


class FieldSpec(BaseModel):
    """One field to acquire, at its position in the tile objective's frame (um)."""

    model_config = ConfigDict(frozen=True)

    field_id: str
    role: Role
    objective: str
    x_um: float
    y_um: float
    grid_row: int | None = None
    grid_col: int | None = None

    @property
    def filename(self) -> str:
        """File name of the field's OME-TIFF inside ``fields/``."""
        return f"{self.field_id}.ome.tif"


def _steps(start: float, length: float, fov: float, overlap: float) -> list[float]:
    """Centres of fields of size *fov* covering ``[start, start + length]`` with *overlap*."""
    if length <= fov:
        return [start + length / 2]
    pitch = fov * (1 - overlap)
    n = math.ceil((length - fov) / pitch) + 1
    limits.check(n, limits.PLAN_FIELDS, f"{n} tiles along one axis", " fields")
    span = (n - 1) * pitch + fov
    first = start + length / 2 - span / 2 + fov / 2
    return [first + i * pitch for i in range(n)]


def tile_grid(
    region: Region,
    fov_um: tuple[float, float],
    overlap: float,
    objective: str,
    *,
    serpentine: bool = True,
) -> list[FieldSpec]:
    """Tiles of size ``fov_um = (width, height)`` covering *region* with fractional *overlap*.

    The grid is centred on the region; rows run along x. With *serpentine* odd rows run
    backwards so that the stage never travels back across the whole region.
    """
    xs = _steps(region.x_um, region.width_um, fov_um[0], overlap)
    ys = _steps(region.y_um, region.height_um, fov_um[1], overlap)
    limits.check(len(xs) * len(ys), limits.PLAN_FIELDS, f"{len(ys)}x{len(xs)} tiles", " fields")
    fields = []
    for r, y in enumerate(ys):
        cols = list(enumerate(xs))
        if serpentine and r % 2 == 1:
            cols.reverse()
        for c, x in cols:
            fields.append(
                FieldSpec(
                    field_id=f"tile_r{r:02d}_c{c:02d}",
                    role="tile",
                    objective=objective,
                    x_um=x,
                    y_um=y,
                    grid_row=r,
                    grid_col=c,
                )
            )
    return fields


def serpentine_order(
    centres: Sequence[tuple[float, float]], row_height_um: float
) -> list[tuple[float, float]]:
    """Order points row by row (rows *row_height_um* tall), alternating the x direction."""
    rows: dict[int, list[tuple[float, float]]] = {}
    for x, y in centres:
        rows.setdefault(math.floor(y / row_height_um), []).append((x, y))
    ordered: list[tuple[float, float]] = []
    for i, key in enumerate(sorted(rows)):
        ordered.extend(sorted(rows[key], reverse=i % 2 == 1))
    return ordered


def sample_centres(
    region: Region,
    count: int,
    fov_um: tuple[float, float],
    *,
    seed: int,
    margin_um: float = 0.0,
    accept: Callable[[float, float], bool] | None = None,
    max_draws: int = 200,
) -> list[tuple[float, float]]:
    """Draw *count* non-overlapping field centres inside *region*, away from its edges.

    A centre keeps half a field plus *margin_um* from every edge and a full field from every
    other centre. *accept* (e.g. "not empty glass") may reject candidates. Fewer than *count*
    centres come back when the region cannot hold more within ``max_draws * count`` draws.
    """
    half_w, half_h = fov_um[0] / 2 + margin_um, fov_um[1] / 2 + margin_um
    x0, x1 = region.x_um + half_w, region.x_max_um - half_w
    y0, y1 = region.y_um + half_h, region.y_max_um - half_h
    if x1 < x0 or y1 < y0:
        return []
    rng = np.random.default_rng(seed)
    chosen: list[tuple[float, float]] = []
    for _ in range(max_draws * max(count, 1)):
        if len(chosen) == count:
            break
        x, y = float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))
        if any(abs(x - cx) < fov_um[0] and abs(y - cy) < fov_um[1] for cx, cy in chosen):
            continue
        if accept is not None and not accept(x, y):
            continue
        chosen.append((x, y))
    return chosen


def target_fields(
    centres: Sequence[tuple[float, float]], objective: str, row_height_um: float, serpentine: bool
) -> list[FieldSpec]:
    """Target fields at *centres*, numbered in acquisition order."""
    ordered = serpentine_order(centres, row_height_um) if serpentine else list(centres)
    return [
        FieldSpec(field_id=f"target_{i:03d}", role="target", objective=objective, x_um=x, y_um=y)
        for i, (x, y) in enumerate(ordered)
    ]
