"""Pure-numpy helpers that prepare camera and model images for the screen."""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Rec. 601 luma weights, used for the grayscale display of RGB frames.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


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
) -> tuple[int, int, int, int, int]:
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
    tuple
        ``(y0, y1, x0, x1, factor)``: draw ``image[y0:y1, x0:x1]`` reduced by ``factor``. A view
        outside the image gives the whole image.
    """
    y0, y1, x0, x1 = 0, height, 0, width
    if visible is not None:
        vx, vy, vw, vh = visible
        cx0, cx1 = max(0, math.floor(vx)), min(width, math.ceil(vx + vw))
        cy0, cy1 = max(0, math.floor(vy)), min(height, math.ceil(vy + vh))
        if cx1 > cx0 and cy1 > cy0:
            y0, y1, x0, x1 = cy0, cy1, cx0, cx1
    return y0, y1, x0, x1, display_factor((y1 - y0, x1 - x0), screen_px)


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Area-average *image* ``(y, x)`` or ``(y, x, c)`` by an integer *factor* (1: unchanged)."""
    if factor <= 1:
        return image
    h, w = image.shape[0] // factor, image.shape[1] // factor
    src = image[: h * factor, : w * factor]
    if src.dtype not in (np.uint8, np.uint16, np.float32):
        src = src.astype(np.float32)
    out = cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA)
    if image.ndim == 3 and out.ndim == 2:  # cv2 drops a single channel axis
        out = out[..., None]
    return out


def to_gray(image: np.ndarray) -> np.ndarray:
    """Luminance of an RGB image as float32 ``(y, x)``; one-channel images pass through."""
    if image.ndim == 2:
        return image
    if image.shape[-1] == 1:
        return image[..., 0]
    return image[..., :3].astype(np.float32) @ _LUMA


def auto_levels(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Display levels from the *low*/*high* percentiles of a subsample of *image*.

    Returns a non-empty range even for a constant image.
    """
    step = max(1, max(image.shape[0], image.shape[1]) // 256)
    sample = np.asarray(image[::step, ::step], dtype=np.float32)
    lo, hi = (float(v) for v in np.percentile(sample, [low, high]))
    if not hi > lo:
        hi = lo + 1.0
    return lo, hi
