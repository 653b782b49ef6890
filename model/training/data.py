"""Training data from a pairs directory: normalised fields, overlapping patches, augmentation."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from deepscope.errors import InputError
from deepscope.formats.pairs import PairSet, Split, load_pair
from model.config import Normalisation


@dataclass(frozen=True)
class FieldPair:
    """One registered pair as float32 ``(c, y, x)`` arrays in raw intensity units."""

    pair_id: str
    lr: np.ndarray
    hr: np.ndarray


def load_fields(pairs_dir: str | Path, pairset: PairSet, split: Split) -> list[FieldPair]:
    """Load every accepted pair of *split*; check shapes against the pairs' scale."""
    out = []
    for pair in pairset.accepted(split):
        lr, hr = load_pair(pairs_dir, pair)
        lr = np.moveaxis(lr.astype(np.float32), -1, 0)
        hr = np.moveaxis(hr.astype(np.float32), -1, 0)
        want = (round(lr.shape[1] * pairset.scale), round(lr.shape[2] * pairset.scale))
        if lr.shape[0] != pairset.channels or hr.shape[1:] != want:
            raise InputError(
                f"pair {pair.pair_id}: lr {lr.shape} / hr {hr.shape} do not fit scale "
                f"{pairset.scale} with {pairset.channels} channel(s)"
            )
        out.append(FieldPair(pair.pair_id, lr, hr))
    return out


def fit_normalisation(fields: list[FieldPair], mode: str, max_value: float) -> Normalisation:
    """Normalisation for *mode*: ``white_level`` maps [0, max_value] to [0, 1]; ``mean_std``."""
    channels = fields[0].lr.shape[0]
    if mode == "white_level":
        return Normalisation.identity(channels, max_value)
    lr = np.concatenate([f.lr.reshape(channels, -1) for f in fields], axis=1)
    hr = np.concatenate([f.hr.reshape(channels, -1) for f in fields], axis=1)
    return Normalisation(
        input_offset=tuple(float(v) for v in lr.mean(1)),
        input_scale=tuple(float(max(v, 1e-6)) for v in lr.std(1)),
        target_offset=tuple(float(v) for v in hr.mean(1)),
        target_scale=tuple(float(max(v, 1e-6)) for v in hr.std(1)),
    )


def normalise(x: np.ndarray, offset: tuple[float, ...], scale: tuple[float, ...]) -> np.ndarray:
    """``(x - offset) / scale`` per channel of a ``(c, y, x)`` array."""
    o = np.asarray(offset, np.float32)[:, None, None]
    s = np.asarray(scale, np.float32)[:, None, None]
    return ((x - o) / s).astype(np.float32)


def scale_fraction(scale: float, patch: int) -> Fraction:
    """The scale as ``p/q``; *patch* must be a multiple of ``q`` (whole 100x pixels)."""
    frac = Fraction(scale).limit_denominator(4)
    if patch % frac.denominator:
        raise InputError(
            f"patch_size={patch} times scale {scale} is not a whole number of pixels; "
            f"use a multiple of {frac.denominator}"
        )
    return frac


def dihedral(x: torch.Tensor, code: int) -> torch.Tensor:
    """One of the 8 flips/rotations of a ``(..., y, x)`` tensor (code 0 is the identity)."""
    if code & 4:
        x = x.flip(-1)
    return torch.rot90(x, code & 3, dims=(-2, -1))


class CropSampler:
    """Aligned random crops of whole normalised fields, drawn anew for every step.

    A crop's 40x origin is a multiple of the scale's denominator so that its 100x crop starts on
    a whole pixel (for 2.5: even 40x origins). Every field is mirrored (edge pixel repeated) by
    half a crop on each side, 40x and 100x about the same edges (a field is first trimmed to a
    whole number of origin steps, so that both edges lie on both grids), and the origins are
    drawn uniformly over the mirrored field. A pixel ``k < P/2`` from the border then lies in
    ``P/2 + k`` crops itself and in ``P/2 - k`` through its mirror image: every pixel is seen
    by ``P`` crop positions, a corner as often as the centre (without the mirror a corner pixel
    lies in one crop only, and on raw frames the learned offset suits the centre). A mirrored
    pair is still a pair: the optics are symmetric, so the 40x of the mirrored specimen is the
    mirrored 40x.
    Fields are drawn in proportion to the number of crop positions they hold; nothing is
    dropped. A batch is a pure function of ``(seed, step)``: a resumed run or a DDP rank draws
    exactly what an uninterrupted single-process run would.
    """

    def __init__(
        self, fields: list[FieldPair], norm: Normalisation, scale: float, patch: int
    ) -> None:
        frac = scale_fraction(scale, patch)
        self.p, self.q = frac.numerator, frac.denominator
        self.patch, self.hr_patch = patch, patch * self.p // self.q
        self.lr, self.hr, counts = [], [], []
        self._pixels = 0
        pad = round(patch / 2 / self.q) * self.q  # half a crop, whole origin steps
        hr_pad = pad * self.p // self.q
        for f in fields:
            # whole origin steps whose 100x counterpart lies inside the target
            ly, lx = (
                min(n // self.q, m // self.p) * self.q
                for n, m in zip(f.lr.shape[1:], f.hr.shape[1:], strict=True)
            )
            hy, hx = ly * self.p // self.q, lx * self.p // self.q
            ny = self._positions(ly + 2 * pad, hy + 2 * hr_pad)
            nx = self._positions(lx + 2 * pad, hx + 2 * hr_pad)
            if ly >= patch and lx >= patch:
                lr = normalise(f.lr[:, :ly, :lx], norm.input_offset, norm.input_scale)
                lr = np.pad(lr, ((0, 0), (pad, pad), (pad, pad)), mode="symmetric")
                self.lr.append(torch.from_numpy(lr))
                hr = normalise(f.hr[:, :hy, :hx], norm.target_offset, norm.target_scale)
                hr = np.pad(hr, ((0, 0), (hr_pad, hr_pad), (hr_pad, hr_pad)), mode="symmetric")
                self.hr.append(torch.from_numpy(hr))
                counts.append((ny, nx))
                self._pixels += ly * lx
        if not counts:
            raise InputError(
                f"no {patch}x{patch} training crops: every training field is smaller; "
                "lower patch_size or register larger fields"
            )
        self.counts = torch.tensor(counts, dtype=torch.long)
        self.weights = (self.counts[:, 0] * self.counts[:, 1]).double()

    def _positions(self, lr_len: int, hr_len: int) -> int:
        """Number of crop origins (multiples of q) whose 40x and 100x crops fit."""
        last = min(lr_len - self.patch, (hr_len - self.hr_patch) * self.q // self.p)
        return last // self.q + 1 if last >= 0 else 0

    @property
    def pixels(self) -> int:
        """40x pixels in the training fields the sampler draws from."""
        return self._pixels

    def batch(
        self, seed: int, step: int, size: int, augment: bool, part: slice | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops ``(n, c, P, P)`` / ``(n, c, P*s, P*s)`` of step *step*; *part* of the batch."""
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.multinomial(self.weights, size, replacement=True, generator=g)
        u = torch.rand((size, 2), generator=g, dtype=torch.float64)
        origin = (u * self.counts[idx]).long() * self.q
        codes = torch.randint(0, 8, (size,), generator=g) if augment else torch.zeros(size)
        xs, ys = [], []
        for k in range(size)[part or slice(None)]:
            i, (oy, ox), code = int(idx[k]), origin[k].tolist(), int(codes[k])
            hy, hx = oy * self.p // self.q, ox * self.p // self.q
            lr = self.lr[i][:, oy : oy + self.patch, ox : ox + self.patch]
            hr = self.hr[i][:, hy : hy + self.hr_patch, hx : hx + self.hr_patch]
            xs.append(dihedral(lr, code))
            ys.append(dihedral(hr, code))
        return torch.stack(xs), torch.stack(ys)
