"""The noise-free 100x truth of registered pairs from a dataset acquired on the simulator.

Registration knows only what was recorded; the simulator knows where every frame really was.
:func:`record_snaps` appends the ground truth of every frame a simulated core snaps to a JSON
Lines file (written as acquisition goes, so a resumed or killed run keeps what it took; keep it
outside the dataset directory, whose files are the acquisition's own);
:class:`PairTruth`, made from that log and the dataset, renders for a registered pair the
noise-free 100x image on the pair's 100x grid at the TRUE pose of its 40x tile (the pair's grid
is defined by the tile crop: 100x pixel ``(u, v)`` is tile pixel
``(i0 - 0.5 + (u + 0.5) / s, j0 - 0.5 + (v + 0.5) / s)``), once per plane of the 100x z-stack
at that plane's true focus, in camera counts without vignetting (the evaluation fits a gain and
offset per channel). It is a truth source for :func:`model.training.evaluate.evaluate_model`,
which collapses the stack as registration collapsed the target.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.formats.dataset import open_dataset
from deepscope.ometiff import ImageMeta, read_ome_tiff
from deepscope.paths import safe_join
from simulators.core import make_core, microscope_of
from simulators.microscope import SnapTruth
from simulators.render import TileCache, optical_image

log = logging.getLogger("deepscope.simulators")

#: Commanded positions closer than this (um) are the same stage position.
SAME_POSITION_UM = 1e-3


def record_snaps(core: Any, path: str | Path) -> None:
    """Append the :class:`SnapTruth` of every frame *core* snaps to *path* (JSON Lines)."""
    scope = microscope_of(core)
    lock = threading.Lock()
    out = Path(path)

    def on_snap(*_: object) -> None:
        with lock, out.open("a", encoding="utf-8") as fh:
            fh.write(scope.snap_log[-1].model_dump_json() + "\n")

    core.events.imageSnapped.connect(on_snap)


def _read_snaps(path: Path) -> list[SnapTruth]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [SnapTruth.model_validate_json(line) for line in lines if line.strip()]


def _mean_xy(meta: ImageMeta) -> tuple[float, float]:
    return (
        float(np.mean([p.x_um for p in meta.planes])),
        float(np.mean([p.y_um for p in meta.planes])),
    )


@dataclass(frozen=True)
class _Crop:
    """A pair's 40x crop in its tile (origin pixel, shape) and the snaps of tile and target."""

    i0: int
    j0: int
    shape: tuple[int, int]
    tile_snap: SnapTruth
    target_snaps: list[SnapTruth]


class PairTruth:
    """Truth source for the pairs registered from a simulated dataset.

    Parameters
    ----------
    dataset_dir
        The dataset the pairs were registered from.
    pairs_dir
        The pairs directory (for each pair's 40x crop and its metadata).
    snaps
        The log written by :func:`record_snaps` during the acquisition.
    seed
        Seed of the simulated microscope that acquired the dataset (specimen, objectives).
    """

    def __init__(
        self, dataset_dir: str | Path, pairs_dir: str | Path, snaps: str | Path, seed: int
    ) -> None:
        self.dataset = open_dataset(dataset_dir)
        self.pairs_dir = Path(pairs_dir)
        self.snaps = _read_snaps(Path(snaps))
        self.scope = microscope_of(make_core(seed=seed, sensor=(16, 16)))
        self.tiles = TileCache(self.scope.specimen, 256 * 2**20)
        self.records = {r.field_id: r for r in self.dataset.done()}

    def _snaps_of(self, meta: ImageMeta, objective: str) -> list[SnapTruth]:
        """The last logged snap of each recorded plane (same objective and commanded xyz)."""
        out = []
        for p in meta.planes:
            hits = [
                s
                for s in self.snaps
                if s.objective == objective
                and abs(s.commanded_x_um - p.x_um) < SAME_POSITION_UM
                and abs(s.commanded_y_um - p.y_um) < SAME_POSITION_UM
                and abs(s.commanded_z_um - p.z_um) < SAME_POSITION_UM
            ]
            if not hits:
                return []
            out.append(hits[-1])
        return out

    def _field(self, field_id: str) -> tuple[np.ndarray, ImageMeta] | None:
        rec = self.records.get(field_id)
        if rec is None:
            return None
        stack, meta = read_ome_tiff(self.dataset.path_of(rec))
        return stack, meta

    def _crop(self, pair: Any) -> _Crop | None:
        """Where the pair's 40x crop lies in its tile, and the logged snaps of tile and target."""
        if pair.lr is None:
            return None
        lr, lr_meta = read_ome_tiff(safe_join(self.pairs_dir, pair.lr))
        tile = self._field(str(lr_meta.annotations.get("tile_id", "")))
        target = self._field(pair.field_id)
        if tile is None or target is None:
            return None
        (tile_stack, tile_meta), (_, target_meta) = tile, target
        tile_snaps = self._snaps_of(tile_meta, tile_meta.objective or "40x")
        target_snaps = self._snaps_of(target_meta, target_meta.objective or "100x")
        if not tile_snaps or not target_snaps:
            log.warning("no logged snap for pair %s: its truth is not known", pair.pair_id)
            return None
        # the crop origin in its tile, from the crop centre recorded through the tile position
        p = tile_meta.pixel_size_um
        (cx, cy), (x, y) = _mean_xy(tile_meta), _mean_xy(lr_meta)
        th, tw = tile_stack.shape[1:3]
        nh, nw = lr.shape[1:3]
        i0 = round((x - cx) / p + (tw - 1) / 2 - (nw - 1) / 2)
        j0 = round((y - cy) / p + (th - 1) / 2 - (nh - 1) / 2)
        return _Crop(i0, j0, (nh, nw), tile_snaps[-1], target_snaps)

    def _render(
        self, name: str, to_slide: np.ndarray, shape: tuple[int, int], true_z_um: float, ms: float
    ) -> np.ndarray:
        """Noise-free frame of objective *name* in camera counts, without vignetting."""
        spec = self.scope.spec(name)
        parfocal = self.scope.objectives[name].parfocal_z_um
        pitch = self.scope.nominal_pixel_size_um(name)
        image = optical_image(self.tiles, spec, pitch, to_slide, shape, true_z_um - parfocal)
        cam = self.scope.camera
        return (cam.offset_counts + cam.counts_per_ms * ms * image).astype(np.float32)

    def __call__(self, pair: Any, shape: tuple[int, int]) -> np.ndarray | None:
        """Noise-free ``(z, rows, cols, 3)`` stack in camera counts on the pair's 100x grid."""
        crop = self._crop(pair)
        if crop is None:
            return None
        s = shape[1] / crop.shape[1]
        to_tile = np.array(
            [
                [1 / s, 0.0, crop.i0 - 0.5 + 0.5 / s],
                [0.0, 1 / s, crop.j0 - 0.5 + 0.5 / s],
                [0, 0, 1],
            ]
        )
        to_slide = crop.tile_snap.affine() @ to_tile
        planes = [
            self._render(snap.objective, to_slide, shape, snap.true_z_um, snap.exposure_ms)
            for snap in crop.target_snaps
        ]
        return np.stack(planes)

    def input_truth(self, pair: Any) -> np.ndarray | None:
        """Noise-free ``(rows, cols, 3)`` 40x crop of *pair* in camera counts (its tile's focus).

        What the 40x input would be without camera noise (and without vignetting): the input
        a method would start from if the 40x image were noise-free.
        """
        crop = self._crop(pair)
        if crop is None:
            return None
        to_tile = np.array([[1.0, 0.0, crop.i0], [0.0, 1.0, crop.j0], [0, 0, 1]])
        snap = crop.tile_snap
        to_slide = snap.affine() @ to_tile
        return self._render(snap.objective, to_slide, crop.shape, snap.true_z_um, snap.exposure_ms)
