"""A USAF-1951 resolution target (chrome bars on glass) at known slide coordinates.

Element ``(group, element)`` has ``2 ** (group + (element - 1) / 6)`` line pairs per mm; each bar
is half a line pair wide and five bar widths long, three bars per orientation. Groups 7 to 11
(bar widths 3.9 um to 0.14 um) span what the 40x/0.95 objective resolves and what it does not.
Each group is one row, centred on the slide origin; in every element the vertical bars (contrast
along x) sit left of the horizontal bars (contrast along y).
"""

from __future__ import annotations

from functools import cache

import numpy as np
from pydantic import BaseModel, ConfigDict

GROUPS = (7, 8, 9, 10, 11)
CHROME_TRANSMITTANCE = 0.02
_ROW_GAP_UM = 6.0


class UsafElement(BaseModel):
    """One element of the target and where its two bar patterns are (centres, slide um)."""

    model_config = ConfigDict(frozen=True)

    group: int
    element: int
    lp_per_mm: float
    bar_width_um: float
    bar_length_um: float
    x_um: float
    y_um: float
    horizontal_x_um: float
    horizontal_y_um: float


def usaf_elements(groups: tuple[int, ...] = GROUPS) -> list[UsafElement]:
    """Elements of the simulated target, by group.

    ``x_um, y_um`` centre the vertical bars (measure contrast along x), ``horizontal_x_um,
    horizontal_y_um`` the horizontal bars.
    """
    return [e for e in _layout() if e.group in groups]


@cache
def _layout() -> tuple[UsafElement, ...]:
    rows = []
    for g in GROUPS:
        elems = []
        x = 0.0
        for e in range(1, 7):
            lp = 2 ** (g + (e - 1) / 6)
            w = 1000 / (2 * lp)
            elems.append((e, lp, w, x))
            x += 13 * w
        rows.append((g, elems, x, 5 * 1000 / (2 * 2**g)))
    total_h = sum(r[3] for r in rows) + _ROW_GAP_UM * (len(rows) - 1)
    y = -total_h / 2
    out = []
    for g, elems, width, height in rows:
        yc = y + height / 2
        for e, lp, w, x in elems:
            x0 = x - width / 2
            out.append(
                UsafElement(
                    group=g,
                    element=e,
                    lp_per_mm=lp,
                    bar_width_um=w,
                    bar_length_um=5 * w,
                    x_um=x0 + 2.5 * w,
                    y_um=yc,
                    horizontal_x_um=x0 + 9.5 * w,
                    horizontal_y_um=yc,
                )
            )
        y += height + _ROW_GAP_UM
    return tuple(out)


@cache
def _bars() -> np.ndarray:
    """All bars as rows ``(x0, x1, y0, y1)`` in slide um."""
    bars = []
    for el in _layout():
        w, length = el.bar_width_um, el.bar_length_um
        for k in (-2, 0, 2):  # three bars, one bar width apart
            bars.append(
                (
                    el.x_um + (k - 0.5) * w,
                    el.x_um + (k + 0.5) * w,
                    el.y_um - length / 2,
                    el.y_um + length / 2,
                )
            )
            bars.append(
                (
                    el.horizontal_x_um - length / 2,
                    el.horizontal_x_um + length / 2,
                    el.horizontal_y_um + (k - 0.5) * w,
                    el.horizontal_y_um + (k + 0.5) * w,
                )
            )
    return np.array(bars, np.float64)


def _coverage(lo: float, hi: float, centres: np.ndarray, pitch: float) -> np.ndarray:
    return (
        np.clip(np.minimum(hi, centres + pitch / 2) - np.maximum(lo, centres - pitch / 2), 0, None)
        / pitch
    )


class UsafSpecimen:
    """The target as a specimen: one thin layer, chrome bars rendered with exact pixel coverage."""

    layers_z_um: tuple[float, ...] = (0.0,)

    def render(
        self, x0_um: float, y0_um: float, pitch_um: float, rows: int, cols: int
    ) -> np.ndarray:
        """Transmittance ``(1, rows, cols, 3)``."""
        xs = x0_um + np.arange(cols) * pitch_um
        ys = y0_um + np.arange(rows) * pitch_um
        chrome = np.zeros((rows, cols), np.float32)
        b = _bars()
        hit = (b[:, 1] > xs[0] - pitch_um) & (b[:, 0] < xs[-1] + pitch_um)
        hit &= (b[:, 3] > ys[0] - pitch_um) & (b[:, 2] < ys[-1] + pitch_um)
        for bx0, bx1, by0, by1 in b[hit]:
            chrome += np.outer(
                _coverage(by0, by1, ys, pitch_um), _coverage(bx0, bx1, xs, pitch_um)
            ).astype(np.float32)
        t = 1.0 - (1.0 - CHROME_TRANSMITTANCE) * np.clip(chrome, 0, 1)
        return np.repeat(t[None, :, :, None], 3, axis=3)

    def tissue_fraction(self, x_um: float, y_um: float, width_um: float, height_um: float) -> float:
        """Fraction of the rectangle inside the target's bounding box."""
        b = _bars()
        ox = max(
            0.0, min(x_um + width_um / 2, b[:, 1].max()) - max(x_um - width_um / 2, b[:, 0].min())
        )
        oy = max(
            0.0, min(y_um + height_um / 2, b[:, 3].max()) - max(y_um - height_um / 2, b[:, 2].min())
        )
        return float(ox * oy / (width_um * height_um))
