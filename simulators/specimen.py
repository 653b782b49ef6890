"""Procedural specimens: a seeded H&E tissue section and a USAF-1951 resolution target.

A specimen renders on demand the transmittance of any slide region, on any pixel grid, as a stack
of depth layers ``(n_layers, rows, cols, 3)`` (RGB, float32 in [0, 1]). Everything is a function of
slide coordinates and the seed only: the same region rendered twice, or at two pixel pitches,
shows the same structures (texture finer than a coarse grid can hold is left out of it, as the
optics would remove it anyway). The slide is unbounded; tissue covers most of it, with glass
between sections and holes inside them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import cv2
import numpy as np

from simulators.noise_fields import (
    fractal_noise,
    fractal_noise_grid,
    hash_uniform,
    value_noise,
    value_noise_grid,
)

#: Optical density per unit stain (RGB), Ruifrok & Johnston colour deconvolution vectors.
HEMATOXYLIN_OD = np.array([0.65, 0.70, 0.29], dtype=np.float32)
EOSIN_OD = np.array([0.07, 0.99, 0.11], dtype=np.float32)
_NEG_OD = -np.stack([HEMATOXYLIN_OD, EOSIN_OD])  # (stain, channel)
_CELL_UM = 32.0  # objects are generated per 32 um cell of the slide
_MARGIN_UM = 24.0  # largest reach of an object beyond its cell
SECTION_UM = 4.5  # thickness of the tissue section
N_LAYERS = 8  # depth layers the section is cut into
_LAYER_UM = SECTION_UM / N_LAYERS
_SHIFT = 4  # cv2 drawing sub-pixel bits
_SCALE = 1 << _SHIFT
_PAD_PX = 16  # border drawn around every region and cut away (seamless tiles)


class Specimen(Protocol):
    """What the renderer needs from a specimen."""

    layers_z_um: tuple[float, ...]

    def render(
        self, x0_um: float, y0_um: float, pitch_um: float, rows: int, cols: int
    ) -> np.ndarray:
        """Transmittance ``(n_layers, rows, cols, 3)`` of a region.

        Pixel (i, j) is centred on slide point ``(x0_um + j * pitch_um, y0_um + i * pitch_um)``.
        """
        ...

    def tissue_fraction(self, x_um: float, y_um: float, width_um: float, height_um: float) -> float:
        """Fraction of the rectangle (centre ``x_um, y_um``) covered by specimen, 0..1."""
        ...


@dataclass(frozen=True)
class _Nucleus:
    """An ellipsoidal nucleus (semi-axes a, b in the slide plane, c in depth) in its cell."""

    x: float
    y: float
    z: float
    a: float
    b: float
    c: float
    angle: float
    darkness: float
    cell: float  # cell (cytoplasm, membrane) size relative to the nucleus
    nucleoli: tuple[tuple[float, float, float, float], ...]  # (dx, dy, dz, r) from the centre


@dataclass(frozen=True)
class _Fibre:
    """A collagen fibre: a 3-D path (slide um, z um) with parallel fibrils inside it."""

    points: np.ndarray  # (k, 3) x, y, z
    width: float
    strength: float
    fibrils: int


@dataclass(frozen=True)
class _Disc:
    """A red blood cell: a biconcave disc lying flat at depth z."""

    x: float
    y: float
    z: float
    r: float


def _layer_of(z_um: np.ndarray) -> np.ndarray:
    """Index of the depth layer holding height *z_um* (-1 or N_LAYERS outside the section)."""
    k = np.floor((np.asarray(z_um) + SECTION_UM / 2) / _LAYER_UM).astype(int)
    return np.where((k < 0) | (k >= N_LAYERS), -1, k)


class TissueSpecimen:
    """An H&E-stained tissue section, 4.5 um thick, cut into eight depth layers.

    Nuclei are ellipsoids 4.5-9 um across and 5-9 um deep, so the section cuts through most of
    them and their outlines span its thickness (in focus at mid-section, as on a real slide); a
    few are caps above or below the middle. Each layer shows its own cross-section of every body:
    nuclei (haematoxylin: chromatin granules down to ~0.2 um that differ from layer to layer, a
    darker envelope, nucleoli a layer or two deep), cytoplasm and membranes around them,
    biconcave red blood cells (eosin, pale centre only near their mid-plane), and collagen fibres
    that climb through the layers, each a bundle of 0.12 um fibrils. Stroma is eosin with a
    fine fibrillar texture per layer over a slowly varying density. Where the low-frequency
    tissue field is below threshold the slide is bare glass.
    """

    layers_z_um: tuple[float, ...] = tuple(
        round((k + 0.5) * _LAYER_UM - SECTION_UM / 2, 6) for k in range(N_LAYERS)
    )

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    # -- where the tissue is ----------------------------------------------------------------
    def tissue_density(self, x_um: np.ndarray, y_um: np.ndarray) -> np.ndarray:
        """Tissue presence in [0, 1] (0 = glass) at slide coordinates; sections, gaps and holes."""
        return self._density(
            fractal_noise(x_um, y_um, 400.0, self.seed * 7 + 1, octaves=3),
            value_noise(x_um, y_um, 40.0, self.seed * 7 + 2),
        )

    @staticmethod
    def _density(field: np.ndarray, holes: np.ndarray) -> np.ndarray:
        edge = np.clip((field - 0.36) / 0.04, 0.0, 1.0)
        hole = np.clip((holes - 0.9) / 0.03, 0.0, 1.0)
        return (edge * (1.0 - hole)).astype(np.float32)

    def tissue_fraction(self, x_um: float, y_um: float, width_um: float, height_um: float) -> float:
        """Fraction of the rectangle (centre ``x_um, y_um``) covered by tissue, 0..1."""
        xs = x_um + np.linspace(-width_um / 2, width_um / 2, 48)
        ys = y_um + np.linspace(-height_um / 2, height_um / 2, 48)
        return float(self.tissue_density(xs[None, :], ys[:, None]).mean())

    # -- objects ----------------------------------------------------------------------------
    @lru_cache(maxsize=4096)  # noqa: B019 - bounded; specimens live as long as their core
    def _cell_objects(self, ci: int, cj: int) -> tuple[list[_Nucleus], list[_Fibre], list[_Disc]]:
        key = int(hash_uniform(np.array([ci]), np.array([cj]), self.seed * 7 + 3)[0] * 2**31)
        rng = np.random.default_rng([self.seed, key, ci & 0xFFFF, cj & 0xFFFF])
        x0, y0 = cj * _CELL_UM, ci * _CELL_UM
        half = SECTION_UM / 2
        cellularity = float(value_noise(np.array(x0), np.array(y0), 90.0, self.seed * 7 + 4))

        def places(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            x = x0 + rng.uniform(0, _CELL_UM, n)
            y = y0 + rng.uniform(0, _CELL_UM, n)
            return x, y, self.tissue_density(x, y) >= 0.5

        n = int(rng.poisson(4 + 12 * cellularity))
        x, y, keep = places(n)
        r = rng.uniform(2.2, 4.5, n)
        ratio, angle = rng.uniform(0.55, 1.0, n), rng.uniform(0, 180, n)
        depth = rng.uniform(2.5, 4.5, n)  # z semi-axis
        z = rng.uniform(-1, 1, n) * (half + 0.4 * depth)  # each one reaches into the section
        darkness, cell = rng.uniform(0.7, 1.3, n), rng.uniform(1.5, 2.4, n)
        nuclei = []
        for k in np.flatnonzero(keep).tolist():
            m = int(rng.integers(1, 4))
            u = rng.uniform(-0.5, 0.5, (m, 3)) * (r[k], r[k] * ratio[k], depth[k])
            nl = tuple(
                (float(a), float(b), float(c), float(rng.uniform(0.35, 0.6))) for a, b, c in u
            )
            nuclei.append(
                _Nucleus(
                    x[k], y[k], z[k], r[k], r[k] * ratio[k], depth[k],
                    angle[k], darkness[k], cell[k], nl,
                )
            )  # fmt: skip
        n = int(rng.poisson(3 + 6 * (1 - cellularity)))
        x, y, keep = places(n)
        fibres: list[_Fibre] = []
        for k in range(n):
            steps = int(rng.integers(6, 13))
            heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.25, steps))
            seg = rng.uniform(1.0, 1.8)
            climb = rng.normal(0, 0.3) + np.cumsum(rng.normal(0, 0.05, steps))  # um per step
            z0 = rng.uniform(-half, half)
            width, strength = rng.uniform(0.2, 0.9), rng.uniform(0.4, 0.9)
            fibrils = int(rng.integers(2, 5))
            if keep[k]:
                pts = np.stack(
                    [
                        x[k] + np.cumsum(seg * np.cos(heading)),
                        y[k] + np.cumsum(seg * np.sin(heading)),
                        z0 + np.cumsum(climb),
                    ],
                    axis=1,
                )
                fibres.append(_Fibre(pts, width, strength, fibrils))
        n = int(rng.poisson(0.6))
        x, y, keep = places(n)
        r, z = rng.uniform(3.2, 3.9, n), rng.uniform(-half, half, n)
        discs = [_Disc(x[k], y[k], z[k], r[k]) for k in np.flatnonzero(keep)]
        return nuclei, fibres, discs

    # -- rendering --------------------------------------------------------------------------
    def render(
        self, x0_um: float, y0_um: float, pitch_um: float, rows: int, cols: int
    ) -> np.ndarray:
        """Transmittance ``(8, rows, cols, 3)`` of the region starting at ``(x0_um, y0_um)``.

        Drawn with a border that is cut away, so that anti-aliased shapes clipped at the edge
        of one region join those of its neighbour without a seam.
        """
        pad = _PAD_PX
        out = self._render_padded(
            x0_um - pad * pitch_um, y0_um - pad * pitch_um, pitch_um, rows + 2 * pad, cols + 2 * pad
        )
        return np.ascontiguousarray(out[:, pad:-pad, pad:-pad])

    def _render_padded(
        self, x0_um: float, y0_um: float, pitch_um: float, rows: int, cols: int
    ) -> np.ndarray:
        n_layers = N_LAYERS
        layers_z = np.asarray(self.layers_z_um)
        x1 = x0_um + np.arange(cols) * pitch_um
        y1 = y0_um + np.arange(rows) * pitch_um
        fine = 1.5 * pitch_um  # texture finer than this would alias on this grid
        density = self._density(
            fractal_noise_grid(x1, y1, 400.0, self.seed * 7 + 1, octaves=3),
            value_noise_grid(x1, y1, 40.0, self.seed * 7 + 2),
        )
        stroma = density * (0.12 + 0.45 * fractal_noise_grid(x1, y1, 6.0, self.seed * 7 + 5, 4))

        nuc = np.zeros((n_layers, rows, cols), np.uint8)  # nuclear body
        rim = np.zeros((n_layers, rows, cols), np.uint8)  # envelope, nucleoli
        eos = np.zeros((n_layers, rows, cols), np.uint8)  # cytoplasm, membranes, red cells
        fib = np.zeros((n_layers, rows, cols), np.uint8)  # collagen (full density per layer)
        dark = np.zeros((n_layers, rows, cols), np.float32)

        def px(x: float, y: float) -> tuple[int, int]:
            return (round((x - x0_um) / pitch_um * _SCALE), round((y - y0_um) / pitch_um * _SCALE))

        def ln(um: float) -> int:
            return max(1, round(um / pitch_um * _SCALE))

        def stroke(width_um: float, value: float) -> tuple[int, int]:
            """Line thickness (px) and value keeping the line's absorption at any pitch."""
            t = max(1, round(width_um / pitch_um))
            return t, round(value * min(1.0, width_um / (pitch_um * t)))

        x_end, y_end = x0_um + cols * pitch_um, y0_um + rows * pitch_um

        def visible(x: float, y: float, reach: float) -> bool:
            return x0_um - reach < x < x_end + reach and y0_um - reach < y < y_end + reach

        membrane, envelope = stroke(0.15, 70), stroke(0.25, 255)
        cj0 = int(np.floor((x0_um - _MARGIN_UM) / _CELL_UM))
        cj1 = int(np.floor((x_end + _MARGIN_UM) / _CELL_UM))
        ci0 = int(np.floor((y0_um - _MARGIN_UM) / _CELL_UM))
        ci1 = int(np.floor((y_end + _MARGIN_UM) / _CELL_UM))
        for ci in range(ci0, ci1 + 1):
            for cj in range(cj0, cj1 + 1):
                nuclei, fibres, discs = self._cell_objects(ci, cj)
                for n in nuclei:
                    if not visible(n.x, n.y, n.cell * n.a):
                        continue
                    c, ang = px(n.x, n.y), round(n.angle)
                    u = (layers_z - n.z) / n.c
                    for k in np.flatnonzero(np.abs(u) < n.cell).tolist():
                        s = float(np.sqrt(1 - (u[k] / n.cell) ** 2))  # cytoplasm cross-section
                        cell = (ln(s * n.cell * n.a), ln(s * 0.9 * n.cell * n.b))
                        cv2.ellipse(eos[k], c, cell, ang, 0, 360, 28, -1, cv2.LINE_AA, _SHIFT)
                        cv2.ellipse(
                            eos[k], c, cell, ang, 0, 360, membrane[1], membrane[0],
                            cv2.LINE_AA, _SHIFT,
                        )  # fmt: skip
                        if abs(u[k]) >= 1:
                            continue
                        s = float(np.sqrt(1 - u[k] ** 2))  # nuclear cross-section
                        axes = (ln(s * n.a), ln(s * n.b))
                        cv2.ellipse(nuc[k], c, axes, ang, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
                        cv2.ellipse(
                            rim[k], c, axes, ang, 0, 360, envelope[1], envelope[0],
                            cv2.LINE_AA, _SHIFT,
                        )  # fmt: skip
                        cv2.ellipse(
                            dark[k], c, axes, ang, 0, 360, n.darkness, -1, cv2.LINE_8, _SHIFT
                        )
                        for dx, dy, dz, r in n.nucleoli:
                            h = (layers_z[k] - n.z - dz) / r
                            if abs(h) < 1:
                                cv2.circle(
                                    rim[k], px(n.x + dx, n.y + dy), ln(r * np.sqrt(1 - h * h)),
                                    255, -1, cv2.LINE_AA, _SHIFT,
                                )  # fmt: skip
                for f in fibres:
                    lo, hi = f.points[:, :2].min(axis=0), f.points[:, :2].max(axis=0)
                    mx, my = (lo + hi) / 2
                    if not visible(float(mx), float(my), float((hi - lo).max()) / 2 + 1):
                        continue
                    self._draw_fibre(fib, f, x0_um, y0_um, pitch_um, stroke)
                for d in discs:
                    if not visible(d.x, d.y, d.r):
                        continue
                    for k in np.flatnonzero(np.abs(layers_z - d.z) < 1.1).tolist():
                        if abs(layers_z[k] - d.z) < 0.45:  # mid-plane: the thin centre too
                            cv2.circle(eos[k], px(d.x, d.y), ln(d.r), 255, -1, cv2.LINE_AA, _SHIFT)
                        else:  # above and below: the thick rim only
                            ring = max(1, round(0.5 * d.r / pitch_um))
                            cv2.circle(
                                eos[k], px(d.x, d.y), ln(0.75 * d.r), 255, ring,
                                cv2.LINE_AA, _SHIFT,
                            )  # fmt: skip

        out = np.empty((n_layers, rows, cols, 3), np.float32)
        # bodies span the section: their optical density is shared out over the layers
        w_nuc, w_rim, w_eos = (np.float32(v / 255 / n_layers) for v in (1.5, 1.6, 2.4))
        for k in range(n_layers):
            key = self.seed * 7 + 16 + 2 * k
            h = rim[k] * w_rim
            rr, cc = np.flatnonzero(nuc[k].any(axis=1)), np.flatnonzero(nuc[k].any(axis=0))
            if rr.size:  # chromatin granules, only where there are nuclei
                box = slice(rr[0], rr[-1] + 1), slice(cc[0], cc[-1] + 1)
                grain = fractal_noise_grid(x1[box[1]], y1[box[0]], 0.8, key, 3, min_scale_um=fine)
                chromatin = 0.25 + 1.8 * np.clip((grain - 0.38) / 0.24, 0, 1)
                h[box] += nuc[k][box] * dark[k][box] * chromatin * w_nuc
            texture = fractal_noise_grid(x1, y1, 1.6, key + 1, 2, min_scale_um=fine)
            e = stroma * (0.3 + 1.4 * texture) * (1 - np.float32(0.7 / 255) * nuc[k])
            e *= np.float32(1 / n_layers)
            e += eos[k] * w_eos + fib[k] * np.float32(0.9 / 255)
            np.matmul(np.stack([h, e], axis=-1), _NEG_OD, out=out[k])
            np.exp(out[k], out=out[k])
        return out

    @staticmethod
    def _draw_fibre(
        canvas: np.ndarray,
        f: _Fibre,
        x0_um: float,
        y0_um: float,
        pitch_um: float,
        stroke: Callable[[float, float], tuple[int, int]],
    ) -> None:
        """Draw fibre *f* into the layers its path passes through: a faint body, bright fibrils."""
        xy, z = f.points[:, :2], f.points[:, 2]
        seg_layer = _layer_of((z[:-1] + z[1:]) / 2)
        tangent = np.gradient(xy, axis=0)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        offsets = (np.arange(f.fibrils) - (f.fibrils - 1) / 2) / max(f.fibrils - 1, 1)
        body = stroke(f.width, 255 * 0.4 * f.strength)
        fibril = stroke(0.12, 255 * f.strength)
        for k in np.unique(seg_layer[seg_layer >= 0]):
            # runs of consecutive segments in layer k, as polylines over their vertices
            idx = np.flatnonzero(seg_layer == k)
            runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
            paths = [(xy, body)] + [(xy + 0.4 * f.width * o * normal, fibril) for o in offsets]
            for path, (t, v) in paths:
                lines = [
                    np.round((path[r[0] : r[-1] + 2] - (x0_um, y0_um)) / pitch_um * _SCALE)
                    for r in runs
                ]
                cv2.polylines(
                    canvas[k], [a.astype(np.int32) for a in lines], False, v, t, cv2.LINE_AA, _SHIFT
                )
