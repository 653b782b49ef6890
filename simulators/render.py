"""Rendering of camera frames: specimen tiles -> warp to the camera grid -> PSF per layer -> sensor.

Specimen transmittance is rendered per depth layer on the objective's own nominal pixel grid in
square tiles that are cached (LRU, bounded in bytes). A frame is the mosaic of the tiles it
covers, warped (``cv2.warpAffine``) onto the camera pixels with the true pose (stage error,
objective offset, rotation, magnification error), blurred per layer and colour channel with the
defocused PSF of :mod:`simulators.optics`, and multiplied through the layers.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import lru_cache

import cv2
import numpy as np

from simulators.optics import OBJECTIVES, WAVELENGTHS_UM, ObjectiveSpec, psf_kernel
from simulators.specimen import Specimen

TILE_PX = 256


class TileCache:
    """Specimen tiles on a pixel grid of a given pitch, keyed by (pitch, tile row, tile col)."""

    def __init__(self, specimen: Specimen, max_bytes: int = 768 * 2**20) -> None:
        self.specimen = specimen
        self.max_bytes = max_bytes
        self._tiles: OrderedDict[tuple[float, int, int], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def tile(self, pitch_um: float, ti: int, tj: int) -> np.ndarray:
        """Transmittance ``(layers, TILE_PX, TILE_PX, 3)`` of tile (ti, tj) of the pitch grid."""
        key = (pitch_um, ti, tj)
        with self._lock:
            if (hit := self._tiles.get(key)) is not None:
                self._tiles.move_to_end(key)
                return hit
        data = self.specimen.render(
            tj * TILE_PX * pitch_um, ti * TILE_PX * pitch_um, pitch_um, TILE_PX, TILE_PX
        )
        with self._lock:
            self._tiles[key] = data
            self._bytes += data.nbytes
            while self._bytes > self.max_bytes and len(self._tiles) > 1:
                _, old = self._tiles.popitem(last=False)
                self._bytes -= old.nbytes
        return data

    def mosaic(self, pitch_um: float, i0: int, j0: int, rows: int, cols: int) -> np.ndarray:
        """Grid pixels ``[i0, i0 + rows) x [j0, j0 + cols)`` as ``(layers, rows, cols, 3)``."""
        n_layers = len(self.specimen.layers_z_um)
        out = np.empty((n_layers, rows, cols, 3), np.float32)
        for ti in range(i0 // TILE_PX, (i0 + rows - 1) // TILE_PX + 1):
            for tj in range(j0 // TILE_PX, (j0 + cols - 1) // TILE_PX + 1):
                t = self.tile(pitch_um, ti, tj)
                a0, a1 = max(i0, ti * TILE_PX), min(i0 + rows, (ti + 1) * TILE_PX)
                b0, b1 = max(j0, tj * TILE_PX), min(j0 + cols, (tj + 1) * TILE_PX)
                out[:, a0 - i0 : a1 - i0, b0 - j0 : b1 - j0] = t[
                    :, a0 - ti * TILE_PX : a1 - ti * TILE_PX, b0 - tj * TILE_PX : b1 - tj * TILE_PX
                ]
        return out


def _decimation(spec: ObjectiveSpec, pitch_um: float, dz_um: float) -> int:
    """Largest factor (1, 2, 4) by which a layer can be blurred at reduced resolution.

    A layer is blurred at ``pitch * f`` when its defocused transfer function (green) stays below
    5 % of its DC value beyond 0.8 of the coarse grid's Nyquist frequency, so the decimation
    neither loses what the blur keeps nor aliases it back when interpolated up.
    """
    return _decimation_cached(spec.name, round(pitch_um, 4), round(dz_um, 2))


@lru_cache(maxsize=512)
def _decimation_cached(name: str, pitch_um: float, dz_um: float) -> int:
    k = psf_kernel(OBJECTIVES[name], WAVELENGTHS_UM[1], pitch_um, dz_um)
    n = 256
    pad = np.zeros((n, n), np.float64)
    pad[: k.shape[0], : k.shape[1]] = k
    otf = np.abs(np.fft.fft2(pad))
    f = np.fft.fftfreq(n, pitch_um)
    radius = np.hypot(f[:, None], f[None, :])
    return next(
        d for d in (4, 2, 1) if d == 1 or otf[radius >= 0.8 * 0.5 / (pitch_um * d)].max() <= 0.05
    )


def _scale_affine(f: int) -> np.ndarray:
    """Fine pixel coordinates of coarse pixel centres for decimation *f* (3x3)."""
    c = (f - 1) / 2
    return np.array([[f, 0, c], [0, f, c], [0, 0, 1]], np.float64)


def optical_image(
    tiles: TileCache,
    spec: ObjectiveSpec,
    grid_pitch_um: float,
    pixel_to_slide: np.ndarray,
    shape: tuple[int, int],
    focus_z_um: float,
) -> np.ndarray:
    """Noise-free image ``(rows, cols, 3)`` in [0, 1] (fraction of light transmitted).

    Layers far from focus are warped and blurred at 1/2 or 1/4 resolution (after an area
    down-sampling of the specimen, so nothing aliases) and interpolated back.

    Parameters
    ----------
    tiles
        Specimen tile cache.
    spec
        Objective in use (NA, immersion) for the PSF.
    grid_pitch_um
        Pitch of the specimen grid the tiles are rendered on (the objective's nominal pixel).
    pixel_to_slide
        2x3 affine mapping frame pixel ``(col, row, 1)`` to slide ``(x_um, y_um)``.
    shape
        ``(rows, cols)`` of the frame.
    focus_z_um
        Height of the focal plane in specimen coordinates (0 = mid-section).
    """
    rows, cols = shape
    a = np.asarray(pixel_to_slide, dtype=np.float64)
    pitch = float(np.sqrt(abs(np.linalg.det(a[:, :2]))))
    layers_dz = [focus_z_um - z for z in tiles.specimen.layers_z_um]
    factors = [_decimation(spec, pitch, dz) for dz in layers_dz]
    kernels = [
        [psf_kernel(spec, wl, pitch * f, dz) for wl in WAVELENGTHS_UM]
        for f, dz in zip(factors, layers_dz, strict=True)
    ]
    reach = max(f * (ks[0].shape[0] // 2 + 2) for f, ks in zip(factors, kernels, strict=True))
    margin = -(-reach // 4) * 4  # multiple of 4, so every decimation divides the padded frame
    h = -(-(rows + 2 * margin) // 4) * 4
    w = -(-(cols + 2 * margin) // 4) * 4
    # padded-frame pixel (c, r) -> specimen grid coordinates
    shift = np.array([[1, 0, -margin], [0, 1, -margin], [0, 0, 1]], np.float64)
    to_grid = np.vstack([a / grid_pitch_um, [0, 0, 1]]) @ shift
    corners = to_grid[:2] @ np.array([[0, w, 0, w], [0, 0, h, h], [1, 1, 1, 1]], np.float64)
    j0, i0 = (np.floor(corners.min(axis=1)) - 4).astype(int)
    j1, i1 = (np.ceil(corners.max(axis=1)) + 4).astype(int)
    mh, mw = -(-(i1 - i0) // 4) * 4, -(-(j1 - j0) // 4) * 4
    mosaic = tiles.mosaic(grid_pitch_um, int(i0), int(j0), int(mh), int(mw))
    to_mosaic = np.array([[1, 0, -j0], [0, 1, -i0], [0, 0, 1]], np.float64) @ to_grid
    image = np.ones((rows, cols, 3), np.float32)
    for layer, f, ks in zip(mosaic, factors, kernels, strict=True):
        src = layer
        m = to_mosaic
        if f > 1:
            src = cv2.resize(layer, (mw // f, mh // f), interpolation=cv2.INTER_AREA)
            m = np.linalg.inv(_scale_affine(f)) @ to_mosaic @ _scale_affine(f)
        warped = cv2.warpAffine(
            src,
            m[:2],
            (w // f, h // f),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        blurred = np.empty_like(warped)
        for ch, k in enumerate(ks):
            blurred[..., ch] = cv2.filter2D(warped[..., ch], -1, k, borderType=cv2.BORDER_REPLICATE)
        if f > 1:
            blurred = cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR)
        image *= blurred[margin : margin + rows, margin : margin + cols]
    return image
