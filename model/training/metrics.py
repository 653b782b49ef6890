"""Image quality (scikit-image SSIM/PSNR at a stated white level) and bootstrap intervals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap
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


@dataclass(frozen=True)
class Interval:
    """Mean over fields and its bootstrap confidence interval (``None`` with fewer than 2)."""

    mean: float
    low: float | None
    high: float | None
    n: int


def bootstrap_mean(values: Sequence[float], *, seed: int = 0, confidence: float = 0.95) -> Interval:
    """Mean of per-field *values* with a BCa bootstrap interval (``scipy.stats.bootstrap``).

    Fields are the resampled unit (9999 resamples, seeded). Identical values give a zero-width
    interval; a single value, or an infinite one (PSNR of an exact copy), gives none.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("bootstrap_mean needs at least one value")
    mean = float(v.mean())
    if v.size < 2 or not np.all(np.isfinite(v)):
        return Interval(mean, None, None, int(v.size))
    if np.ptp(v) == 0:
        return Interval(mean, mean, mean, int(v.size))
    res = bootstrap(
        (v,),
        np.mean,
        confidence_level=confidence,
        n_resamples=9999,
        method="BCa",
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return Interval(mean, float(ci.low), float(ci.high), int(v.size))
