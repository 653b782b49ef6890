"""Display geometry: which part of an image to draw, at about one pixel per screen pixel.

Shared by the inference engine (which reduces the enhanced frame on the device, so only the
view-sized image crosses to the host) and the GUI (which reduces raw camera frames on the host).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ViewRequest:
    """What a display shows: a rectangle in input (raw camera) pixels and its size on screen.

    ``x, y, width, height`` may reach outside the frame (they are clipped); ``screen_px`` is the
    longer side of the view on screen, in screen pixels.
    """

    x: float
    y: float
    width: float
    height: float
    screen_px: int

    def scaled(self, factor: float) -> tuple[float, float, float, float]:
        """The rectangle ``(x, y, w, h)`` in the pixels of an image *factor* times denser."""
        return (self.x * factor, self.y * factor, self.width * factor, self.height * factor)


@dataclass(frozen=True)
class ViewWindow:
    """``image[y0:y1, x0:x1]`` area-averaged by ``factor``: the part of an image that is drawn."""

    y0: int
    y1: int
    x0: int
    x1: int
    factor: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the reduced image."""
        return (self.y1 - self.y0) // self.factor, (self.x1 - self.x0) // self.factor


def display_factor(shape: tuple[int, ...], max_px: int) -> int:
    """Integer downsampling factor that brings the longer image side to at most *max_px*."""
    if max_px < 1:
        raise ValueError(f"max_px={max_px} must be >= 1")
    return max(1, math.ceil(max(shape[0], shape[1]) / max_px))


def display_window(
    height: int,
    width: int,
    visible: tuple[float, float, float, float] | None,
    screen_px: int,
) -> ViewWindow:
    """The part of an image to draw, and its downsampling factor, for a view on screen.

    Parameters
    ----------
    height, width
        Image size in pixels.
    visible
        ``(x, y, w, h)`` of the view in image pixels, or None for the whole image.
    screen_px
        Longest side of the view on screen, in screen pixels.

    Returns
    -------
    ViewWindow
        Draw ``image[y0:y1, x0:x1]`` reduced by ``factor``. A view outside the image gives the
        whole image; the window never reduces to less than one pixel.
    """
    y0, y1, x0, x1 = 0, height, 0, width
    if visible is not None:
        vx, vy, vw, vh = visible
        cx0, cx1 = max(0, math.floor(vx)), min(width, math.ceil(vx + vw))
        cy0, cy1 = max(0, math.floor(vy)), min(height, math.ceil(vy + vh))
        if cx1 > cx0 and cy1 > cy0:
            y0, y1, x0, x1 = cy0, cy1, cx0, cx1
    factor = min(display_factor((y1 - y0, x1 - x0), screen_px), y1 - y0, x1 - x0)
    return ViewWindow(y0, y1, x0, x1, factor)
