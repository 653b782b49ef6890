"""Shared pixel operations: grey conversion, the normalised-variance focus measure, raw dtypes."""

from __future__ import annotations

import numpy as np

#: Rec. 601 luma weights of an RGB pixel.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Grey float32 ``(y, x)`` of a ``(y, x)`` or ``(y, x, c)`` image (luma for RGB)."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        return img
    if img.shape[-1] == 1:
        return img[..., 0]
    if img.shape[-1] == 3:
        return np.asarray(img @ LUMA, dtype=np.float32)
    return np.asarray(img.mean(axis=-1), dtype=np.float32)


def normalized_variance(image: np.ndarray) -> float:
    """Focus score ``var / mean`` of the grey image: larger is sharper, brightness-independent.

    Groen et al. (1985) found it the most robust of the common bright-field focus measures.
    """
    gray = to_gray(image)
    mean = float(gray.mean())
    return float(gray.var()) / mean if mean > 0 else 0.0


def to_raw_dtype(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float intensities in *dtype*: rounded and clipped to an integer dtype, else float32."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(image), info.min, info.max).astype(dtype)
    return np.asarray(image, dtype=np.float32)
