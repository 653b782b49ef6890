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

import cv2
import numpy as np

from simulators.optics import WAVELENGTHS_UM, ObjectiveSpec, psf_kernel
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


def optical_image(
    tiles: TileCache,
    spec: ObjectiveSpec,
    grid_pitch_um: float,
    pixel_to_slide: np.ndarray,
    shape: tuple[int, int],
    focus_z_um: float,
) -> np.ndarray:
    """Noise-free image ``(rows, cols, 3)`` in [0, 1] (fraction of light transmitted).

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
    true_pitch = float(np.sqrt(abs(np.linalg.det(a[:, :2]))))
    layers_dz = [focus_z_um - z for z in tiles.specimen.layers_z_um]
    kernels = [[psf_kernel(spec, wl, true_pitch, dz) for wl in WAVELENGTHS_UM] for dz in layers_dz]
    margin = max(k.shape[0] // 2 for ks in kernels for k in ks) + 1
    # frame pixel (c, r) with margin -> grid coordinates
    shift = np.array([[1, 0, -margin], [0, 1, -margin], [0, 0, 1]], np.float64)
    to_grid = (a / grid_pitch_um) @ shift
    h, w = rows + 2 * margin, cols + 2 * margin
    corners = to_grid @ np.array([[0, w, 0, w], [0, 0, h, h], [1, 1, 1, 1]], np.float64)
    j0, i0 = (np.floor(corners.min(axis=1)) - 2).astype(int)
    j1, i1 = (np.ceil(corners.max(axis=1)) + 2).astype(int)
    mosaic = tiles.mosaic(grid_pitch_um, int(i0), int(j0), int(i1 - i0), int(j1 - j0))
    m = to_grid.copy()
    m[:, 2] -= (j0, i0)
    image = np.ones((rows, cols, 3), np.float32)
    for layer, ks in zip(mosaic, kernels, strict=True):
        warped = cv2.warpAffine(
            layer,
            m,
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        for ch, k in enumerate(ks):
            blurred = cv2.filter2D(warped[..., ch], -1, k, borderType=cv2.BORDER_REPLICATE)
            image[..., ch] *= blurred[margin : margin + rows, margin : margin + cols]
    return image
