"""Image-quality metrics (scikit-image SSIM and PSNR) on raw images with a stated white level."""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def crop_common(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop two ``(y, x, ...)`` images to their common top-left area."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    return a[:h, :w], b[:h, :w]


def ssim_psnr(image: np.ndarray, target: np.ndarray, max_value: float) -> tuple[float, float]:
    """SSIM and PSNR (dB) of *image* against *target*, both ``(y, x, c)`` raw intensities.

    Both are scaled to ``[0, 1]`` by the white level *max_value* (the image is clipped to it), so
    ``data_range`` is 1. SSIM uses scikit-image's defaults (7x7 window) per channel, averaged.
    """
    a, b = crop_common(image, target)
    a = np.clip(a.astype(np.float64) / max_value, 0.0, 1.0)
    b = np.clip(b.astype(np.float64) / max_value, 0.0, 1.0)
    channel_axis = -1 if a.ndim == 3 else None
    ssim = structural_similarity(a, b, data_range=1.0, channel_axis=channel_axis)
    if np.array_equal(a, b):  # skimage would divide by a zero error
        return float(ssim), float("inf")
    psnr = peak_signal_noise_ratio(b, a, data_range=1.0)
    return float(ssim), float(psnr)
