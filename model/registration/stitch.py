"""Stitching the 40x tiles into one mosaic.

The stage positions give each tile's prior place. Every pair of tiles whose prior footprints
overlap is measured by phase correlation on the overlap; a global least-squares solve then
places all tiles. Edges with a low correlation after the shift, a shift larger than the stage
can be wrong by, or a large residual in the solve are rejected (and reported), and the solve is
repeated without them. A weak pull towards the prior keeps tiles without good edges in place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.signal import windows
from skimage.registration import phase_cross_correlation

from model.registration.align import ncc, refine_ecc, translation

log = logging.getLogger("deepscope.registration")

#: Border of the overlap left out of the sub-pixel refinement (pixels).
SUBPIXEL_MARGIN_PX = 4
#: Weight of the pull of every tile towards its stage position, relative to one image edge.
PRIOR_WEIGHT = 1e-3


@dataclass(frozen=True)
class Edge:
    """A measured relation between two overlapping tiles: ``pos[j] - pos[i] = (dx, dy)``."""

    i: int
    j: int
    dx: float
    dy: float
    score: float
    kept: bool
    reason: str | None = None


@dataclass
class Mosaic:
    """Placed tiles: ``positions[k]`` is the mosaic ``(x, y)`` of tile k's pixel ``(0, 0)``."""

    positions: np.ndarray
    tile_shape: tuple[int, int]
    shape: tuple[int, int]
    edges: list[Edge] = field(default_factory=list)

    def compose(self, tiles: list[np.ndarray]) -> np.ndarray:
        """Paste *tiles* (gray or colour) at their rounded positions; later tiles on top."""
        first = np.asarray(tiles[0])
        out = np.zeros(self.shape + first.shape[2:], dtype=first.dtype)
        th, tw = self.tile_shape
        for (x, y), tile in zip(self.positions, tiles, strict=True):
            c, r = round(x), round(y)
            out[r : r + th, c : c + tw] = tile
        return out


def _crops(
    ti: np.ndarray, tj: np.ndarray, oi: tuple[int, int], oj: tuple[int, int], min_overlap: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The common region of two tiles placed at integer offsets *oi*, *oj*."""
    th, tw = ti.shape
    x0, y0 = max(oi[0], oj[0]), max(oi[1], oj[1])
    x1, y1 = min(oi[0], oj[0]) + tw, min(oi[1], oj[1]) + th
    if x1 - x0 < min_overlap or y1 - y0 < min_overlap:
        return None
    if x1 - x0 < tw // 2 and y1 - y0 < th // 2:
        return None  # diagonal neighbours share only a corner: too little to measure
    crop_i = ti[y0 - oi[1] : y1 - oi[1], x0 - oi[0] : x1 - oi[0]]
    crop_j = tj[y0 - oj[1] : y1 - oj[1], x0 - oj[0] : x1 - oj[0]]
    return crop_i, crop_j


def _measure(
    ti: np.ndarray, tj: np.ndarray, pi: np.ndarray, pj: np.ndarray, min_overlap: int
) -> tuple[float, float, float] | None:
    """Correction ``(dx, dy)`` to ``pj - pi`` and its overlap NCC; None without overlap.

    Phase correlation is biased when the shift is a large part of a narrow overlap, so the
    overlap is re-cut at the current estimate until the remaining shift is below a pixel. Its
    sub-pixel part is pulled towards zero by the taper both crops share, so the last fraction
    of a pixel comes from ECC (translation only) on the re-cut overlap.
    """
    oi = (round(pi[0]), round(pi[1]))
    rel = np.array([pj[0] - pi[0], pj[1] - pi[1]], dtype=np.float64)
    for _ in range(4):
        oj = (oi[0] + round(rel[0]), oi[1] + round(rel[1]))
        crops = _crops(ti, tj, oi, oj, min_overlap)
        if crops is None:
            return None
        crop_i, crop_j = crops
        # a Tukey taper: suppresses the FFT's wrap-around edges, yet keeps narrow strips usable
        win = np.outer(windows.tukey(crop_i.shape[0], 0.3), windows.tukey(crop_i.shape[1], 0.3))
        shift, _, _ = phase_cross_correlation(
            (crop_i - crop_i.mean()) * win, (crop_j - crop_j.mean()) * win, upsample_factor=10
        )
        # crop_j(q) = crop_i(q + s): tile j sits at oj + s relative to tile i's oi
        rel = np.array([oj[0] - oi[0] + shift[1], oj[1] - oi[1] + shift[0]], dtype=np.float64)
        if abs(shift[0]) < 1.0 and abs(shift[1]) < 1.0:
            break
    score = ncc(crop_i, crop_j)
    m = SUBPIXEL_MARGIN_PX
    if min(crop_i.shape) > 4 * m and score > 0:
        try:
            warp, _ = refine_ecc(
                crop_j[m:-m, m:-m], crop_i, translation(m, m), motion=cv2.MOTION_TRANSLATION
            )
            rel = np.array([oj[0] - oi[0] + warp[0, 2] - m, oj[1] - oi[1] + warp[1, 2] - m])
        except cv2.error:
            pass  # keep the phase-correlation estimate
    return rel[0] - (pj[0] - pi[0]), rel[1] - (pj[1] - pi[1]), score


def _solve(prior: np.ndarray, edges: list[Edge]) -> np.ndarray:
    n = len(prior)
    rows = len(edges) + n
    a = np.zeros((rows, n))
    b = np.zeros((rows, 2))
    for k, e in enumerate(edges):
        a[k, e.j], a[k, e.i] = 1.0, -1.0
        b[k] = (prior[e.j, 0] - prior[e.i, 0] + e.dx, prior[e.j, 1] - prior[e.i, 1] + e.dy)
    for t in range(n):
        a[len(edges) + t, t] = PRIOR_WEIGHT
        b[len(edges) + t] = PRIOR_WEIGHT * prior[t]
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    return np.asarray(sol)


def stitch_tiles(
    tiles: list[np.ndarray],
    prior_px: np.ndarray,
    *,
    max_shift_px: float,
    min_score: float = 0.3,
    max_residual_px: float = 1.5,
    min_overlap: int = 16,
) -> Mosaic:
    """Place grayscale tiles of equal shape by phase correlation and least squares.

    Parameters
    ----------
    tiles
        Grayscale ``(y, x)`` float tiles, all the same shape.
    prior_px
        ``(n, 2)`` prior ``(x, y)`` of each tile's pixel ``(0, 0)`` in 40x pixels (stage).
    max_shift_px
        Largest credible disagreement of a measured edge with the stage positions.
    min_score
        Lowest overlap NCC (after the shift) of an edge that is used.
    max_residual_px
        Edges whose residual in the solve exceeds this are dropped one by one.
    min_overlap
        Smallest overlap (pixels) measured.
    """
    prior = np.asarray(prior_px, dtype=np.float64)
    th, tw = tiles[0].shape[:2]
    measured: list[Edge] = []
    for i in range(len(tiles)):
        for j in range(i + 1, len(tiles)):
            res = _measure(tiles[i], tiles[j], prior[i], prior[j], min_overlap)
            if res is None:
                continue
            dx, dy, score = res
            reason = None
            if score < min_score:
                reason = f"overlap NCC {score:.2f} < {min_score}"
            elif np.hypot(dx, dy) > max_shift_px:
                reason = f"shift {np.hypot(dx, dy):.1f} px exceeds the stage error bound"
            measured.append(Edge(i, j, dx, dy, score, reason is None, reason))
    kept = [e for e in measured if e.kept]
    dropped = [e for e in measured if not e.kept]
    positions = _solve(prior, kept)
    while kept:
        resid = [
            float(
                np.hypot(
                    *(positions[e.j] - positions[e.i] - (prior[e.j] - prior[e.i]))
                    - np.array([e.dx, e.dy])
                )
            )
            for e in kept
        ]
        worst = int(np.argmax(resid))
        if resid[worst] <= max_residual_px:
            break
        e = kept.pop(worst)
        dropped.append(
            Edge(e.i, e.j, e.dx, e.dy, e.score, False, f"residual {resid[worst]:.1f} px")
        )
        positions = _solve(prior, kept)
    positions -= positions.min(axis=0)
    width = int(np.ceil(positions[:, 0].max())) + tw + 1
    height = int(np.ceil(positions[:, 1].max())) + th + 1
    for e in dropped:
        log.info("stitching: edge %d-%d rejected (%s)", e.i, e.j, e.reason)
    return Mosaic(positions, (th, tw), (height, width), kept + dropped)
