"""Seeded value noise: smooth random fields defined everywhere on the slide.

Values depend only on (seed, channel, slide coordinate), so any region rendered at any pixel pitch
shows the same pattern and neighbouring tiles join without seams.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def hash_uniform(ix: np.ndarray, iy: np.ndarray, key: int) -> np.ndarray:
    """Uniform [0, 1) value for each integer lattice point ``(ix, iy)`` under *key* (splitmix64)."""
    with np.errstate(over="ignore"):
        h = ix.astype(np.uint64) * _M1 ^ (iy.astype(np.uint64) + np.uint64(key & 0xFFFFFFFF)) * _M2
        h ^= h >> np.uint64(31)
        h *= _M3
        h ^= h >> np.uint64(29)
        h *= _M2
        h ^= h >> np.uint64(32)
    return (h >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def value_noise(x_um: np.ndarray, y_um: np.ndarray, scale_um: float, key: int) -> np.ndarray:
    """Smooth noise in [0, 1) with feature size *scale_um* at slide coordinates (broadcast)."""
    gx = np.asarray(x_um, dtype=np.float64) / scale_um
    gy = np.asarray(y_um, dtype=np.float64) / scale_um
    x0 = np.floor(gx)
    y0 = np.floor(gy)
    tx = (gx - x0).astype(np.float32)
    ty = (gy - y0).astype(np.float32)
    tx = tx * tx * tx * (tx * (tx * 6 - 15) + 10)
    ty = ty * ty * ty * (ty * (ty * 6 - 15) + 10)
    ix = x0.astype(np.int64)
    iy = y0.astype(np.int64)
    v00 = hash_uniform(ix, iy, key)
    v10 = hash_uniform(ix + 1, iy, key)
    v01 = hash_uniform(ix, iy + 1, key)
    v11 = hash_uniform(ix + 1, iy + 1, key)
    top = v00 + (v10 - v00) * tx
    bottom = v01 + (v11 - v01) * tx
    return top + (bottom - top) * ty


def fractal_noise(
    x_um: np.ndarray, y_um: np.ndarray, scale_um: float, key: int, octaves: int = 3
) -> np.ndarray:
    """Sum of *octaves* value-noise layers, each half the size and amplitude; range ~[0, 1)."""
    total = np.zeros(np.broadcast_shapes(np.shape(x_um), np.shape(y_um)), dtype=np.float32)
    norm = 0.0
    amp = 1.0
    for k in range(octaves):
        total += amp * value_noise(x_um, y_um, scale_um / 2**k, key * 131 + k)
        norm += amp
        amp /= 2
    return total / np.float32(norm)
