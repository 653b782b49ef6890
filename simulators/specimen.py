"""Procedural specimens: a seeded H&E tissue section and a USAF-1951 resolution target.

A specimen renders on demand the transmittance of any slide region, on any pixel grid, as a stack
of depth layers ``(n_layers, rows, cols, 3)`` (RGB, float32 in [0, 1]). Everything is a function of
slide coordinates and the seed only: the same region rendered twice, or at two pixel pitches,
shows the same structures. The slide is unbounded; tissue covers most of it, with glass between
sections and holes inside them.
"""

from __future__ import annotations

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
_CELL_UM = 32.0  # objects are generated per 32 um cell of the slide
_MARGIN_UM = 24.0  # largest reach of an object beyond its cell
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
    x: float
    y: float
    a: float
    b: float
    angle: float
    layer: int
    darkness: float
    cell: float  # cell (membrane) size relative to the nucleus


@dataclass(frozen=True)
class _Fibre:
    points: np.ndarray  # (k, 2) slide um
    width: float
    layer: int
    strength: float


@dataclass(frozen=True)
class _Disc:
    x: float
    y: float
    r: float
    layer: int


class TissueSpecimen:
    """An H&E-stained tissue section, 4.5 um thick, in three depth layers.

    Nuclei (haematoxylin, with chromatin texture, a darker envelope and nucleoli), cell membranes,
    collagen fibres down to ~0.15 um wide and red blood cells (eosin), over an eosin-stained
    stroma whose density varies. Where the low-frequency tissue field is below threshold the
    slide is bare glass.
    """

    layers_z_um: tuple[float, ...] = (-1.5, 0.0, 1.5)

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
        n_layers = len(self.layers_z_um)
        cellularity = float(value_noise(np.array(x0), np.array(y0), 90.0, self.seed * 7 + 4))

        def places(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            x = x0 + rng.uniform(0, _CELL_UM, n)
            y = y0 + rng.uniform(0, _CELL_UM, n)
            return x, y, self.tissue_density(x, y) >= 0.5

        n = int(rng.poisson(4 + 12 * cellularity))
        x, y, keep = places(n)
        r = rng.uniform(2.2, 4.5, n)
        ratio, angle = rng.uniform(0.55, 1.0, n), rng.uniform(0, 180, n)
        layer, darkness = rng.integers(n_layers, size=n), rng.uniform(0.7, 1.3, n)
        cell = rng.uniform(1.5, 2.4, n)
        nuclei = [
            _Nucleus(
                x[k], y[k], r[k], r[k] * ratio[k], angle[k], int(layer[k]), darkness[k], cell[k]
            )
            for k in np.flatnonzero(keep)
        ]
        n = int(rng.poisson(3 + 6 * (1 - cellularity)))
        x, y, keep = places(n)
        fibres: list[_Fibre] = []
        for k in range(n):
            steps = int(rng.integers(6, 14))
            heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.25, steps))
            seg = rng.uniform(1.0, 1.8)
            width, fl, strength = (
                rng.uniform(0.15, 0.7),
                int(rng.integers(n_layers)),
                rng.uniform(0.4, 0.9),
            )
            if keep[k]:
                pts = np.stack(
                    [
                        x[k] + np.cumsum(seg * np.cos(heading)),
                        y[k] + np.cumsum(seg * np.sin(heading)),
                    ],
                    axis=1,
                )
                fibres.append(_Fibre(pts, width, fl, strength))
        n = int(rng.poisson(0.6))
        x, y, keep = places(n)
        r, layer = rng.uniform(3.2, 3.9, n), rng.integers(n_layers, size=n)
        discs = [_Disc(x[k], y[k], r[k], int(layer[k])) for k in np.flatnonzero(keep)]
        return nuclei, fibres, discs

    # -- rendering --------------------------------------------------------------------------
    def render(
        self, x0_um: float, y0_um: float, pitch_um: float, rows: int, cols: int
    ) -> np.ndarray:
        """Transmittance ``(3, rows, cols, 3)`` of the region starting at ``(x0_um, y0_um)``.

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
        n_layers = len(self.layers_z_um)
        xs = (x0_um + np.arange(cols) * pitch_um)[None, :]
        ys = (y0_um + np.arange(rows) * pitch_um)[:, None]
        x1, y1 = xs[0], ys[:, 0]
        density = self._density(
            fractal_noise_grid(x1, y1, 400.0, self.seed * 7 + 1, octaves=3),
            value_noise_grid(x1, y1, 40.0, self.seed * 7 + 2),
        )
        stroma = density * (0.12 + 0.45 * fractal_noise_grid(x1, y1, 6.0, self.seed * 7 + 5, 4))
        chromatin = fractal_noise_grid(x1, y1, 0.8, self.seed * 7 + 6, octaves=3)

        nuc = np.zeros((n_layers, rows, cols), np.uint8)
        rim = np.zeros((n_layers, rows, cols), np.uint8)
        eos = np.zeros((n_layers, rows, cols), np.uint8)
        dark = np.zeros((n_layers, rows, cols), np.float32)

        def px(x: float, y: float) -> tuple[int, int]:
            return (round((x - x0_um) / pitch_um * _SCALE), round((y - y0_um) / pitch_um * _SCALE))

        def ln(um: float) -> int:
            return max(1, round(um / pitch_um * _SCALE))

        x_end, y_end = x0_um + cols * pitch_um, y0_um + rows * pitch_um
        cj0 = int(np.floor((x0_um - _MARGIN_UM) / _CELL_UM))
        cj1 = int(np.floor((x_end + _MARGIN_UM) / _CELL_UM))
        ci0 = int(np.floor((y0_um - _MARGIN_UM) / _CELL_UM))
        ci1 = int(np.floor((y_end + _MARGIN_UM) / _CELL_UM))
        for ci in range(ci0, ci1 + 1):
            for cj in range(cj0, cj1 + 1):
                nuclei, fibres, discs = self._cell_objects(ci, cj)
                for n in nuclei:
                    c, axes = px(n.x, n.y), (ln(n.a), ln(n.b))
                    ang = round(n.angle)
                    cell = (ln(n.cell * n.a), ln(0.9 * n.cell * n.b))
                    cv2.ellipse(eos[n.layer], c, cell, ang, 0, 360, 60, -1, cv2.LINE_AA, _SHIFT)
                    cv2.ellipse(
                        eos[n.layer], c, cell, ang, 0, 360, 110,
                        max(1, round(0.15 / pitch_um)), cv2.LINE_AA, _SHIFT,
                    )  # fmt: skip
                    cv2.ellipse(nuc[n.layer], c, axes, ang, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
                    cv2.ellipse(
                        rim[n.layer],
                        c,
                        axes,
                        ang,
                        0,
                        360,
                        255,
                        max(1, round(0.25 / pitch_um)),
                        cv2.LINE_AA,
                        _SHIFT,
                    )
                    cv2.ellipse(
                        dark[n.layer], c, axes, ang, 0, 360, n.darkness, -1, cv2.LINE_8, _SHIFT
                    )
                    cv2.circle(
                        rim[n.layer],
                        px(n.x + 0.3 * n.a, n.y - 0.2 * n.b),
                        ln(0.45),
                        255,
                        -1,
                        cv2.LINE_AA,
                        _SHIFT,
                    )
                for f in fibres:
                    pts = np.round((f.points - (x0_um, y0_um)) / pitch_um * _SCALE).astype(np.int32)
                    cv2.polylines(
                        eos[f.layer],
                        [pts],
                        False,
                        round(255 * f.strength),
                        max(1, round(f.width / pitch_um)),
                        cv2.LINE_AA,
                        _SHIFT,
                    )
                for d in discs:
                    cv2.circle(eos[d.layer], px(d.x, d.y), ln(d.r), 255, -1, cv2.LINE_AA, _SHIFT)
                    cv2.circle(
                        eos[d.layer], px(d.x, d.y), ln(d.r * 0.45), 150, -1, cv2.LINE_AA, _SHIFT
                    )

        out = np.empty((n_layers, rows, cols, 3), np.float32)
        inv = np.float32(1 / 255)
        for k in range(n_layers):
            h = nuc[k] * inv * dark[k] * (0.35 + 1.1 * chromatin) + rim[k] * inv * 0.6
            e = stroma / n_layers * (1 - 0.7 * nuc[k] * inv) + eos[k] * inv * 0.9
            od = h[..., None] * HEMATOXYLIN_OD + e[..., None] * EOSIN_OD
            np.exp(-od, out=out[k])
        return out
