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


def _axis(coords: np.ndarray, scale_um: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Lattice cell index (from the first node), smoothed fraction, and first node of one axis."""
    g = np.asarray(coords, np.float64) / scale_um
    i0 = np.floor(g)
    t = (g - i0).astype(np.float32)
    t = t * t * t * (t * (t * 6 - 15) + 10)
    first = int(i0.min())
    return (i0 - first).astype(np.intp), t, first


def value_noise_grid(xs_um: np.ndarray, ys_um: np.ndarray, scale_um: float, key: int) -> np.ndarray:
    """:func:`value_noise` on the grid ``ys_um x xs_um`` (1-D axes), as ``(len(ys), len(xs))``.

    Separable: lattice values are hashed once per node, interpolated along y, then along x.
    """
    ix, tx, fx = _axis(xs_um, scale_um)
    iy, ty, fy = _axis(ys_um, scale_um)
    nx, ny = int(ix.max()) + 2, int(iy.max()) + 2
    gx = np.broadcast_to(np.arange(fx, fx + nx)[None, :], (ny, nx))
    gy = np.broadcast_to(np.arange(fy, fy + ny)[:, None], (ny, nx))
    lattice = hash_uniform(gx, gy, key)
    rows = lattice[iy] * (1 - ty)[:, None] + lattice[iy + 1] * ty[:, None]
    return rows[:, ix] * (1 - tx)[None, :] + rows[:, ix + 1] * tx[None, :]


def fractal_noise_grid(
    xs_um: np.ndarray,
    ys_um: np.ndarray,
    scale_um: float,
    key: int,
    octaves: int = 3,
    min_scale_um: float = 0.0,
) -> np.ndarray:
    """:func:`fractal_noise` on the grid ``ys_um x xs_um`` (1-D axes).

    Octaves finer than *min_scale_um* are replaced by their mean (0.5): on a coarse pixel grid
    they would only alias, and the field keeps its mean and its coarser octaves unchanged.
    """
    total = np.zeros((np.size(ys_um), np.size(xs_um)), np.float32)
    norm = 0.0
    amp = 1.0
    for k in range(octaves):
        scale = scale_um / 2**k
        if scale >= min_scale_um:
            total += amp * value_noise_grid(xs_um, ys_um, scale, key * 131 + k)
        else:
            total += np.float32(amp * 0.5)
        norm += amp
        amp /= 2
    return total / np.float32(norm)
