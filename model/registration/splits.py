"""Train/val/test split by field, seeded, so that a test field never reaches training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepscope.formats.pairs import Split

SPLITS: tuple[Split, Split, Split] = ("train", "val", "test")


def _counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder rounding of ``n * fractions``; a non-zero share gets >= 1 if it can."""
    raw = [n * f for f in fractions]
    counts = [int(np.floor(r)) for r in raw]
    order = sorted(range(len(raw)), key=lambda k: raw[k] - counts[k], reverse=True)
    for k in order[: n - sum(counts)]:
        counts[k] += 1
    for k, f in enumerate(fractions):
        if f > 0 and counts[k] == 0 and n >= sum(1 for g in fractions if g > 0):
            donor = int(np.argmax(counts))
            counts[donor] -= 1
            counts[k] += 1
    return counts


def assign_splits(
    field_ids: Sequence[str], fractions: Sequence[float], seed: int
) -> dict[str, Split]:
    """Assign each field to train/val/test in proportion to *fractions* (seeded shuffle).

    The result depends only on the set of ids, the fractions and the seed, not on the order.
    """
    ids = sorted(set(field_ids))
    rng = np.random.default_rng(seed)
    order = [ids[k] for k in rng.permutation(len(ids))]
    out: dict[str, Split] = {}
    start = 0
    for split, count in zip(SPLITS, _counts(len(ids), fractions), strict=True):
        for fid in order[start : start + count]:
            out[fid] = split
        start += count
    return out
