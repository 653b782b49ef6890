"""Choosing and focusing the target (100x) fields from the tiles already acquired."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from skimage.measure import block_reduce

from acquire.passes import Optics
from acquire.storage import DatasetWriter
from deepscope.formats.dataset import open_dataset
from deepscope.imaging import to_gray


def content_check(
    writer: DatasetWriter, tiles: Optics, target_fov_um: tuple[float, float], threshold: float
) -> Callable[[float, float], bool]:
    """Build ``accept(x, y)``: True if the tile under a target field is more than glass."""
    ds = open_dataset(writer.root)
    records = ds.done("tile")
    cache: dict[str, np.ndarray] = {}
    px = tiles.spec.pixel_size_um

    def accept(x: float, y: float) -> bool:
        if not records:
            return True
        rec = min(records, key=lambda r: (r.x_um - x) ** 2 + (r.y_um - y) ** 2)
        if rec.field_id not in cache:
            stack, _ = ds.load(rec)
            cache[rec.field_id] = to_gray(stack[len(stack) // 2])
        grey = cache[rec.field_id]
        h, w = grey.shape
        col = (x - rec.x_um) / px + (w - 1) / 2
        row = (y - rec.y_um) / px + (h - 1) / 2
        hw, hh = target_fov_um[0] / px / 2, target_fov_um[1] / px / 2
        r0, r1 = max(int(row - hh), 0), max(int(row + hh), 0)
        c0, c1 = max(int(col - hw), 0), max(int(col + hw), 0)
        patch = grey[r0:r1, c0:c1]
        patch = patch[: patch.shape[0] // 4 * 4, : patch.shape[1] // 4 * 4]  # whole 4x4 blocks
        if min(patch.shape) < 8:
            return True
        smooth = block_reduce(patch, (4, 4), np.mean)  # averages out shot noise, keeps structure
        mean = float(smooth.mean())
        return mean > 0 and float(smooth.std()) / mean >= threshold

    return accept


def tile_focus(
    writer: DatasetWriter, fallback: Callable[[float, float], float]
) -> Callable[[float, float], float]:
    """Focus z of the nearest tile acquired (autofocus, focus map or nominal), else *fallback*."""
    tiles = [
        (r.x_um, r.y_um, r.z_um)
        for r in writer.records().values()
        if r.role == "tile" and r.status == "done" and r.z_um is not None
    ]

    def focus(x: float, y: float) -> float:
        if not tiles:
            return fallback(x, y)
        return min(tiles, key=lambda t: (t[0] - x) ** 2 + (t[1] - y) ** 2)[2]

    return focus
