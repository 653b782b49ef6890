"""Training data from a pairs directory: normalised fields, overlapping patches, augmentation."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from deepscope.errors import InputError
from model.config import Normalisation
from model.pairs import PairSet, Split, load_pair


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


def patch_starts(length: int, patch: int, step: int, multiple: int) -> list[int]:
    """Patch origins covering ``[0, length)``, each a multiple of *multiple*."""
    if length < patch:
        return []
    last = (length - patch) // multiple * multiple
    starts = list(range(0, last + 1, step))
    if starts[-1] != last:
        starts.append(last)
    return starts


def extract_patches(
    fields: list[FieldPair],
    norm: Normalisation,
    scale: float,
    patch: int,
    overlap: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut normalised ``(n, c, p, p)`` input and ``(n, c, p*scale, p*scale)`` target patches.

    Origins on the 40x grid are multiples of the scale's denominator, so every 100x patch starts
    on a whole pixel (for 2.5: even 40x origins, 40 % overlap -> step 36 / 90 pixels).
    """
    frac = Fraction(scale).limit_denominator(4)
    if patch % frac.denominator:
        raise InputError(
            f"patch_size={patch} times scale {scale} is not a whole number of pixels; "
            f"use a multiple of {frac.denominator}"
        )
    p, q = frac.numerator, frac.denominator
    hp = patch * p // q
    step = max(q, round(patch * (1 - overlap)) // q * q)
    lrs, hrs = [], []
    for f in fields:
        lr = normalise(f.lr, norm.input_offset, norm.input_scale)
        hr = normalise(f.hr, norm.target_offset, norm.target_scale)
        for y in patch_starts(lr.shape[1], patch, step, q):
            for x in patch_starts(lr.shape[2], patch, step, q):
                Y, X = y * p // q, x * p // q
                lrs.append(lr[:, y : y + patch, x : x + patch])
                hrs.append(hr[:, Y : Y + hp, X : X + hp])
    if not lrs:
        raise InputError(
            f"no {patch}x{patch} training patches: the training fields are smaller; "
            "lower patch_size or register larger fields"
        )
    return torch.from_numpy(np.stack(lrs)), torch.from_numpy(np.stack(hrs))


def dihedral(x: torch.Tensor, code: int) -> torch.Tensor:
    """One of the 8 flips/rotations of a ``(..., y, x)`` tensor (code 0 is the identity)."""
    if code & 4:
        x = x.flip(-1)
    return torch.rot90(x, code & 3, dims=(-2, -1))


def augment_codes(n: int, seed: int, epoch: int, augment: bool) -> torch.Tensor:
    """Per-sample flip/rotation codes of one epoch, a pure function of ``(seed, epoch)``.

    Indexed by sample (not by position in the batch), so a resumed run or a DDP rank applies
    exactly the augmentation an uninterrupted single-process run would.
    """
    if not augment:
        return torch.zeros(n, dtype=torch.long)
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randint(0, 8, (n,), generator=g)


def make_batch(
    lr: torch.Tensor, hr: torch.Tensor, idx: torch.Tensor, codes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack the augmented samples *idx* (codes indexed by sample) into a batch."""
    xs = [dihedral(lr[i], int(codes[i])) for i in idx.tolist()]
    ys = [dihedral(hr[i], int(codes[i])) for i in idx.tolist()]
    return torch.stack(xs), torch.stack(ys)
