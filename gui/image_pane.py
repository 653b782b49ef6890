"""One image pane of the Live tab: a view box with its histogram/LUT, status line and scale bar.

Only the part of the frame inside the view is drawn, at about one frame pixel per screen pixel
(see :class:`ImagePane`); the pane keeps what it drew so that the cursor can read pixel values.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QTransform

from deepscope.imaging import to_gray
from gui.display import auto_levels, downsample
from gui.measure import LineProfile, PixelValue, ScaleBar, line_profile, value_at
from model.inference.view import ViewWindow, display_window


class ImagePane:
    """One image in a view box with a title, histogram/LUT, status line and scale bar.

    The status line (frame rate, age, why enhancement is paused) is drawn over the view's
    corner, so its changing text never changes the layout (two linked aspect-locked views
    whose sizes differ by a pixel would keep widening each other's range).

    Only the part of the frame inside the view is drawn, reduced to about one frame pixel per
    screen pixel: a zoomed-out view of a large frame costs little, a zoomed-in view shows every
    pixel. The reduction happens here for host images (:meth:`show`) or on the device before the
    image reaches the host (:meth:`show_reduced`).
    """

    def __init__(self, layout: pg.GraphicsLayout, row: int, col: int, title: str) -> None:
        self.view = pg.ViewBox(lockAspect=True, invertY=True, name=title)
        self.title = layout.addLabel(title, row=row, col=col, colspan=2)
        self.info = pg.TextItem(anchor=(0, 0), color="#e0e0e0", fill=(0, 0, 0, 160))
        self.info.setParentItem(self.view)  # view (not data) coordinates: a fixed corner
        self.info.setPos(4, 4)
        self.scale_bar = ScaleBar()
        self.scale_bar.setParentItem(self.view)
        layout.addItem(self.view, row=row + 1, col=col)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.item)
        self.hist = pg.HistogramLUTItem(image=self.item, levelMode="mono")
        # the histogram follows the image on a timer (refresh_histogram), not on every frame
        self.item.sigImageChanged.disconnect(self.hist.imageChanged)
        self._histogram_stale = False
        layout.addItem(self.hist, row=row + 1, col=col + 1)
        self.shape: tuple[int, ...] | None = None
        self.factor = 1
        self.draws: deque[float] = deque(maxlen=1024)
        # what was drawn, for the cursor: (image, x0, y0, factor) in image pixels, and the size
        # of one image pixel in view units
        self._drawn: tuple[np.ndarray, int, int, int] | None = None
        self._pixel_scale = 1.0

    def screen_px(self, max_px: int) -> int:
        """Longer side of the view on screen, at most *max_px* (before layout: *max_px*)."""
        view_px = int(max(self.view.width(), self.view.height()))
        return min(max_px, view_px) if view_px >= 16 else max_px

    def show(
        self,
        image: np.ndarray,
        *,
        pixel_scale: float,
        pixel_size_um: float,
        max_px: int,
        gray: bool,
        auto: bool,
    ) -> None:
        """Display *image*, whose pixels are *pixel_size_um* and cover *pixel_scale* view units."""
        h, w = image.shape[:2]
        first = self.shape is None or self.shape[:2] != (h, w)
        visible = None
        if not first:
            r = self.view.viewRect()
            visible = (
                r.x() / pixel_scale,
                r.y() / pixel_scale,
                r.width() / pixel_scale,
                r.height() / pixel_scale,
            )
        win = display_window(h, w, visible, self.screen_px(max_px))
        shown = downsample(image[win.y0 : win.y1, win.x0 : win.x1], win.factor)
        self._draw(shown, win, image.shape, pixel_scale=pixel_scale, gray=gray, auto=auto)
        self._drawn = (image, 0, 0, 1)  # the cursor reads the full-resolution image
        self.scale_bar.set_um_per_unit(pixel_size_um / pixel_scale)

    def show_reduced(
        self,
        shown: np.ndarray,
        window: ViewWindow,
        full_shape: tuple[int, ...],
        *,
        pixel_scale: float,
        pixel_size_um: float,
        gray: bool,
        auto: bool,
    ) -> None:
        """Display *shown*, the *window* of an image of *full_shape* already reduced."""
        self._draw(shown, window, full_shape, pixel_scale=pixel_scale, gray=gray, auto=auto)
        self._drawn = (shown, window.x0, window.y0, window.factor)
        self.scale_bar.set_um_per_unit(pixel_size_um / pixel_scale)

    def _draw(
        self,
        shown: np.ndarray,
        win: ViewWindow,
        full_shape: tuple[int, ...],
        *,
        pixel_scale: float,
        gray: bool,
        auto: bool,
    ) -> None:
        h, w = full_shape[:2]
        first = self.shape is None or self.shape[:2] != (h, w)
        shown = to_gray(shown) if gray else (shown[..., 0] if shown.shape[-1] == 1 else shown)
        levels = auto_levels(shown) if auto else self.item.getLevels()
        if levels is None:
            levels = auto_levels(shown)
        self.item.setImage(shown, autoLevels=False, levels=levels)
        step = win.factor * pixel_scale
        transform = QTransform()
        transform.translate(win.x0 * pixel_scale, win.y0 * pixel_scale)
        transform.scale(step, step)
        self.item.setTransform(transform)
        self.shape, self.factor = tuple(full_shape), win.factor
        self._pixel_scale = pixel_scale
        self._histogram_stale = True
        self.draws.append(time.perf_counter())
        if first:
            self.view.setRange(QRectF(0, 0, w * pixel_scale, h * pixel_scale), padding=0.0)

    def refresh_histogram(self) -> None:
        """Recompute the histogram when the image changed since the last call."""
        if self._histogram_stale:
            self._histogram_stale = False
            self.hist.imageChanged()

    def clear(self) -> None:
        """Remove the image (e.g. when the model is unloaded or enhancement is paused)."""
        self.item.clear()
        self.shape = None
        self._drawn = None
        self.scale_bar.set_um_per_unit(None)

    def value_at(self, x_view: float, y_view: float) -> PixelValue | None:
        """The image's value (per channel) at view point (*x_view*, *y_view*); None outside."""
        if self._drawn is None:
            return None
        image, x0, y0, factor = self._drawn
        scale = self._pixel_scale
        return value_at(image, x0, y0, factor, x_view / scale, y_view / scale)

    def profile(self, start: tuple[float, float], end: tuple[float, float]) -> LineProfile | None:
        """Intensity per channel along the line from *start* to *end* (view points), in um.

        Read from what is drawn (the full-resolution raw frame; the device-reduced view of an
        enhanced frame); None without an image, a pixel size, or when the line leaves the image.
        """
        um_per_unit = self.scale_bar.um_per_unit
        if self._drawn is None or um_per_unit is None:
            return None
        image, x0, y0, factor = self._drawn
        s = self._pixel_scale
        return line_profile(
            image,
            x0,
            y0,
            factor,
            (start[0] / s, start[1] / s),
            (end[0] / s, end[1] / s),
            um_per_unit * s,
        )
