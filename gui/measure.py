"""Measuring on the image panes: a scale bar per pane and what lies under the cursor.

Both panes draw in raw-pixel view coordinates (the enhanced image is scaled by 1/scale), so a
pane's micrometres per view unit is its image's pixel size divided by its image pixels' size in
view units. Slide coordinates follow the dataset convention (the stage position is the frame
centre): raw pixel ``(col, row)`` of a ``W x H`` frame lies at
``x_um + (col - (W - 1) / 2) * pixel_size_um``, ``y_um + (row - (H - 1) / 2) * pixel_size_um``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg

from deepscope.framemeta import FrameMeta

#: Share of the view's width the scale bar aims at (it takes the nearest 1/2/5 x 10^k below).
BAR_FRACTION = 0.2


def nice_length(limit: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above *limit* (> 0)."""
    if not limit > 0 or not math.isfinite(limit):
        raise ValueError(f"scale bar limit {limit} must be positive and finite")
    decade = 10.0 ** math.floor(math.log10(limit))
    return max(m * decade for m in (1.0, 2.0, 5.0) if m * decade <= limit * (1 + 1e-9))


def format_length(um: float) -> str:
    """``"50 um"``, ``"0.5 um"`` or ``"2 mm"``."""
    if um >= 1000:
        return f"{um / 1000:g} mm"
    return f"{um:g} um"


class ScaleBar(pg.ScaleBar):
    """A scale bar in a view's bottom-right corner whose length follows the zoom.

    :meth:`set_um_per_unit` gives the pane's micrometres per view unit (None: hidden).
    """

    def __init__(self) -> None:
        super().__init__(size=1.0, width=6, brush="w", pen="k", offset=(-20, -20))
        self.text.fill = pg.mkBrush(0, 0, 0, 160)
        self.um_per_unit: float | None = None
        self.length_um: float | None = None
        self.setVisible(False)

    def set_um_per_unit(self, um_per_unit: float | None) -> None:
        """Use *um_per_unit* from now on (None or not positive: hide the bar)."""
        ok = um_per_unit is not None and math.isfinite(um_per_unit) and um_per_unit > 0
        self.um_per_unit = um_per_unit if ok else None
        self.setVisible(ok)
        self.updateBar()

    def updateBar(self) -> None:  # noqa: N802 (pyqtgraph override)
        """Pick a round length for the current zoom, then draw it."""
        view = self.parentItem()
        if view is None or self.um_per_unit is None:
            return
        width_um = view.viewRect().width() * self.um_per_unit
        if not width_um > 0:
            return
        self.length_um = nice_length(BAR_FRACTION * width_um)
        self.size = self.length_um / self.um_per_unit
        self.text.setText(format_length(self.length_um))
        super().updateBar()


@dataclass(frozen=True)
class PixelValue:
    """The drawn image's value under the cursor, per channel.

    ``averaged`` image pixels per side went into it (1: the pixel itself; more when the view
    shows the image reduced).
    """

    values: tuple[float, ...]
    averaged: int
    integer: bool

    def text(self) -> str:
        """``"R 812  G 640  B 901"`` (``"812"`` for one channel), with the averaging."""
        spec = ".0f" if self.integer else ".1f"
        numbers = [format(v, spec) for v in self.values]
        if len(numbers) == 3:
            numbers = [f"{c} {n}" for c, n in zip("RGB", numbers, strict=True)]
        mean = f" (mean of {self.averaged}x{self.averaged})" if self.averaged > 1 else ""
        return "  ".join(numbers) + mean


def value_at(
    image: np.ndarray, x0: int, y0: int, factor: int, col: float, row: float
) -> PixelValue | None:
    """Value of full-image pixel (*col*, *row*) in *image*; None outside it.

    *image* is the part of the full image from pixel (*x0*, *y0*) on, reduced by *factor*.
    """
    if not (math.isfinite(col) and math.isfinite(row)):
        return None
    r, c = (math.floor(row) - y0) // factor, (math.floor(col) - x0) // factor
    if not (0 <= r < image.shape[0] and 0 <= c < image.shape[1]):
        return None
    pixel = np.atleast_1d(image[r, c])
    return PixelValue(
        values=tuple(float(v) for v in pixel),
        averaged=factor,
        integer=bool(np.issubdtype(image.dtype, np.integer)),
    )


def slide_um(
    x_view: float, y_view: float, shape: tuple[int, ...], meta: FrameMeta
) -> tuple[float, float] | None:
    """Slide position (um) of raw view point (*x_view*, *y_view*) of a frame of *shape*.

    View coordinates put raw pixel ``col`` over ``[col, col + 1)``; None when the frame's meta
    has no finite stage position or pixel size.
    """
    px = float(meta.get("pixel_size_um", math.nan))
    x_um, y_um = float(meta.get("x_um", math.nan)), float(meta.get("y_um", math.nan))
    if not (px > 0 and math.isfinite(x_um) and math.isfinite(y_um)):
        return None
    h, w = shape[:2]
    col, row = x_view - 0.5, y_view - 0.5  # pixel centres at integers
    return x_um + (col - (w - 1) / 2) * px, y_um + (row - (h - 1) / 2) * px


@dataclass(frozen=True)
class LineProfile:
    """Intensity per channel along a line: ``values`` is ``(n, c)``, ``distance_um`` ``(n,)``."""

    distance_um: np.ndarray
    values: np.ndarray


def line_profile(
    image: np.ndarray,
    x0: int,
    y0: int,
    factor: int,
    start: tuple[float, float],
    end: tuple[float, float],
    pixel_size_um: float,
) -> LineProfile | None:
    """Profile of *image* from *start* to *end* (full-image ``(col, row)``, pixel centres at .5).

    *image* is the part of a full image from pixel (*x0*, *y0*) on, reduced by *factor* (as
    :func:`value_at` takes it); *pixel_size_um* is the full image's pixel size. Sampled once per
    *image* pixel by :func:`skimage.measure.profile_line` (linear interpolation); None when
    the line is shorter than a pixel or leaves the image.
    """
    from skimage.measure import profile_line

    def local(p: tuple[float, float]) -> tuple[float, float]:  # (row, col) in *image*
        return ((p[1] - y0) / factor - 0.5, (p[0] - x0) / factor - 0.5)

    src, dst = local(start), local(end)
    h, w = image.shape[:2]
    inside = all(-0.5 <= r <= h - 0.5 and -0.5 <= c <= w - 0.5 for r, c in (src, dst))
    if not inside or math.dist(src, dst) < 1.0:
        return None
    data = image if image.ndim == 3 else image[..., None]
    values = profile_line(
        data.astype(np.float32), src, dst, order=1, mode="nearest", reduce_func=None
    )
    values = np.asarray(values, dtype=np.float32).reshape(-1, data.shape[-1])
    step_um = math.dist(src, dst) / max(len(values) - 1, 1) * factor * pixel_size_um
    return LineProfile(np.arange(len(values)) * step_um, values)


def stage_step_um(
    x_view: float,
    y_view: float,
    shape: tuple[int, ...],
    pixel_size_um: float,
    affine: tuple[float, ...] | None = None,
) -> tuple[float, float]:
    """Stage move (um) that brings raw view point (*x_view*, *y_view*) to the frame centre.

    *affine* is Micro-Manager's pixel-size affine ``(a, b, tx, c, d, ty)`` (pixel -> stage
    um, the camera's orientation on the stage); an all-zero or missing one means the image
    axes are the stage axes at *pixel_size_um*.
    """
    if not (pixel_size_um > 0 and math.isfinite(pixel_size_um)):
        raise ValueError(f"pixel size {pixel_size_um} um must be positive to move by clicks")
    h, w = shape[:2]
    dc, dr = x_view - 0.5 - (w - 1) / 2, y_view - 0.5 - (h - 1) / 2
    if affine is None or not any(affine[i] for i in (0, 1, 3, 4)):
        return dc * pixel_size_um, dr * pixel_size_um
    a, b, _, c, d, _ = affine
    return a * dc + b * dr, c * dc + d * dr
