"""Pure-numpy helpers that prepare camera and model images for the screen."""

from __future__ import annotations

import math

import cv2
import numpy as np


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


def auto_levels(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Display levels from the *low*/*high* percentiles of a subsample of *image*.

    About 16k pixels are sampled, whatever the image size (a few hundred microseconds).
    Returns a non-empty range even for a constant image.
    """
    step = max(1, math.ceil(math.sqrt(image.shape[0] * image.shape[1] / 16384)))
    sample = np.asarray(image[::step, ::step], dtype=np.float32).ravel()
    lo, hi = (float(v) for v in np.quantile(sample, [low / 100, high / 100], method="linear"))
    if not hi > lo:
        hi = lo + 1.0
    return lo, hi
