"""Tile plans for inference at a non-integer scale, with halo cropping and seamless blending.

The network of :mod:`model.network` maps an input offset ``o`` to the output offset
``o * p / q`` (scale ``p/q``, e.g. 5/2). Tiles therefore start at multiples of ``q`` so that
each output tile lands on integer output pixels. Output pixels within the receptive-field halo
of an interior tile edge differ from an untiled run (zero padding replaces real neighbours); they
get zero weight. Across the rest of the overlap, neighbouring tiles cross-fade with
``sin^2``/``cos^2`` ramps, normalised to sum to one at every output pixel, so the blend is a
partition of unity and fp32 tiled inference equals untiled inference where both fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from torch import nn

from deepscope.errors import InputError
from model.network import DeepMicroscopyNet


@dataclass(frozen=True)
class AxisTile:
    """One tile along one axis: input ``[start, stop)`` -> output ``[out_start, out_stop)``."""

    start: int
    stop: int
    out_start: int
    out_stop: int
    weight: np.ndarray  # (out_stop - out_start,) float32 blending weight


@dataclass(frozen=True)
class Tile:
    """A 2-D tile: the product of a y and an x :class:`AxisTile`."""

    y: AxisTile
    x: AxisTile

    @property
    def shape(self) -> tuple[int, int]:
        """Input ``(height, width)`` of this tile."""
        return self.y.stop - self.y.start, self.x.stop - self.x.start

    def weight(self) -> np.ndarray:
        """Blending weight of the output tile, ``(Y, X)`` float32."""
        return np.outer(self.y.weight, self.x.weight).astype(np.float32)


def receptive_radius(net: DeepMicroscopyNet) -> int:
    """Input pixels on each side that one output pixel depends on (before the stride-q conv)."""
    radius = 0
    for part in (net.input_conv, net.blocks, net.output_conv):
        for m in part.modules():
            if isinstance(m, nn.Conv2d):
                k = int(m.kernel_size[0])
                d = int(m.dilation[0])
                radius += d * (k - 1) // 2
    return radius


def halo_pixels(net: DeepMicroscopyNet) -> int:
    """Input pixels at an interior tile edge whose outputs are not exact; a multiple of ``q``.

    The receptive radius plus one pixel for the stride-``q`` output convolution.
    """
    q = net.stride
    h = receptive_radius(net) + 1
    return -(-h // q) * q


def min_overlap(net: DeepMicroscopyNet) -> int:
    """Smallest tile overlap (input pixels) that keeps tiled output exact: two halos."""
    return 2 * halo_pixels(net) + net.stride


def _output_offset(start: int, scale: Fraction) -> int:
    off = start * scale
    if off.denominator != 1:  # guarded by the planner; a bug if it happens
        raise ValueError(f"tile start {start} does not map to an integer output offset")
    return int(off)


def _ramp(n: int) -> np.ndarray:
    """Rising ``sin^2`` ramp of *n* samples at pixel centres (``ramp + ramp[::-1] == 1``)."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    return np.sin(0.5 * np.pi * t) ** 2


def plan_axis(length: int, tile: int, overlap: int, net: DeepMicroscopyNet) -> list[AxisTile]:
    """Split an axis of *length* input pixels into tiles of at most ``tile + q - 1`` pixels."""
    q = net.stride
    scale = Fraction(net.shuffle_factor, q)
    out_len = net.output_size(length, length)[0]
    if length < tile + q:  # fits (a tile may be up to q - 1 pixels longer)
        return [AxisTile(0, length, 0, out_len, np.ones(out_len, dtype=np.float32))]
    step = tile - overlap
    spread = length - tile
    n = 1 + -(-spread // step)
    # evenly spaced starts on multiples of q; consecutive tiles overlap by >= overlap pixels
    starts = [spread * i // (n - 1) // q * q for i in range(n)]
    stops = [*(s + tile for s in starts[:-1]), length]
    out_starts = [_output_offset(s, scale) for s in starts]
    out_stops = [
        min(out_len, o + net.output_size(e - s, 1)[0])
        for s, e, o in zip(starts, stops, out_starts, strict=True)
    ]
    halo_out = math.ceil(halo_pixels(net) * scale) + 1
    weights = [np.ones(e - s, dtype=np.float64) for s, e in zip(out_starts, out_stops, strict=True)]
    for i in range(n - 1):
        # tiles i and i+1 share output [out_starts[i+1], out_stops[i]); fade across its core
        lo, hi = out_starts[i + 1] + halo_out, out_stops[i] - halo_out
        if hi < lo:
            raise InputError(
                f"tile overlap {overlap} is too small for this network; use at least "
                f"{min_overlap(net)} input pixels"
            )
        ramp = _ramp(hi - lo)
        a, b = weights[i], weights[i + 1]
        a_lo, a_hi = lo - out_starts[i], hi - out_starts[i]
        a[a_lo:a_hi] *= 1.0 - ramp
        a[a_hi:] = 0.0
        b_lo, b_hi = lo - out_starts[i + 1], hi - out_starts[i + 1]
        b[:b_lo] = 0.0
        b[b_lo:b_hi] *= ramp
    # normalise so the weights sum to one at every output pixel (also where 3 tiles meet)
    total = np.zeros(out_len)
    for o, e, w in zip(out_starts, out_stops, weights, strict=True):
        total[o:e] += w
    if total.min() <= 0:
        raise InputError(
            f"tile {tile} with overlap {overlap} leaves output pixels uncovered; use a larger tile"
        )
    weights = [w / total[o:e] for o, e, w in zip(out_starts, out_stops, weights, strict=True)]
    return [
        AxisTile(s, e, os_, oe, w.astype(np.float32))
        for s, e, os_, oe, w in zip(starts, stops, out_starts, out_stops, weights, strict=True)
    ]


def check_tiling(tile: int, overlap: int, net: DeepMicroscopyNet) -> None:
    """Raise :class:`InputError` unless *tile* and *overlap* give exact, aligned tiles."""
    q = net.stride
    if overlap < min_overlap(net):
        raise InputError(
            f"tile overlap {overlap} is too small for this network; use at least "
            f"{min_overlap(net)} input pixels"
        )
    if tile - overlap < q or (tile - overlap) % q:
        raise InputError(
            f"tile {tile} minus overlap {overlap} must be a positive multiple of {q} "
            f"(the scale's denominator); e.g. use --tile {overlap + 16 * q}"
        )


def plan_tiles(
    height: int, width: int, tile: int, overlap: int, net: DeepMicroscopyNet
) -> list[Tile]:
    """Tiles covering a ``height x width`` input; one tile when the image fits in *tile*."""
    check_tiling(tile, overlap, net)
    ys = plan_axis(height, tile, overlap, net)
    xs = plan_axis(width, tile, overlap, net)
    return [Tile(y, x) for y in ys for x in xs]
