"""Per-channel linear intensity maps ``gain * x + offset``, fitted by least squares."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Per channel ``(gain, offset)``.
LinearMap = list[tuple[float, float]]


def fit_linear(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> LinearMap:
    """Per-channel ``(gain, offset)`` minimising ``|gain * x + offset - y|^2`` over all pairs.

    *pairs* are ``(x, y)`` images ``(rows, cols, c)`` of equal shape within a pair.
    """
    fits = []
    for c in range(pairs[0][0].shape[2]):
        x = np.concatenate([a[..., c].astype(np.float64).ravel() for a, _ in pairs])
        y = np.concatenate([b[..., c].astype(np.float64).ravel() for _, b in pairs])
        design = np.stack([x, np.ones_like(x)], axis=1)
        (gain, offset), *_ = np.linalg.lstsq(design, y)
        fits.append((float(gain), float(offset)))
    return fits


def apply_linear(image: np.ndarray, fits: LinearMap) -> np.ndarray:
    """``gain * image + offset`` per channel, float32."""
    gain = np.asarray([g for g, _ in fits], np.float32)
    offset = np.asarray([o for _, o in fits], np.float32)
    return image.astype(np.float32) * gain + offset
