"""The registered-pairs format written by ``deepscope register`` and read by training.

A pairs directory holds ``pairs.json`` (:class:`PairSet`) and, per accepted pair, two OME-TIFFs
``pairs/<pair_id>_lr.ome.tif`` (40x crop, ``(h, w, c)``) and ``pairs/<pair_id>_hr.ome.tif``
(registered 100x target, ``(h * scale, w * scale, c)``), covering exactly the same area. Pairs
made on the simulator may also carry ``truth``: the noise-free 100x image of the same area,
rendered at the true pose, in the units of ``hr`` (for :mod:`model.training.evaluate`).

``pairs.json`` is what makes the directory complete: registration removes it (and the QC report)
before it replaces any pair file, deletes the pair files the new run does not name, and writes
``pairs.json`` last. A run that was killed leaves no ``pairs.json``, never one that describes
other files than those on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deepscope.atomic import atomic_write_text
from deepscope.errors import InputError
from deepscope.ometiff import read_ome_tiff
from deepscope.paths import safe_join
from deepscope.validated import load_validated

PAIRS_VERSION: Literal[1] = 1
PAIRS_NAME = "pairs.json"

Split = Literal["train", "val", "test"]


class Transform(BaseModel):
    """Similarity transform mapping 100x pixel coordinates into 40x mosaic coordinates."""

    model_config = ConfigDict(frozen=True)

    tx_px: float
    ty_px: float
    rotation_deg: float = 0.0
    scale: float = 1.0
    matrix: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None


class IntensityMatch(BaseModel):
    """Per-channel ``hr = gain * hr_acquired + offset`` applied to a pair's 100x target.

    Fitted during registration so that the target has the 40x crop's intensities (see
    :mod:`model.registration.intensity`); the stored ``hr`` image already has it applied.
    """

    model_config = ConfigDict(frozen=True)

    gain: tuple[float, ...]
    offset: tuple[float, ...]


class Pair(BaseModel):
    """One registered 40x/100x pair, accepted or rejected with a reason."""

    model_config = ConfigDict(frozen=True)

    pair_id: str
    field_id: str
    split: Split
    accepted: bool
    reason: str | None = None
    lr: str | None = None
    hr: str | None = None
    truth: str | None = Field(
        default=None,
        description="noise-free target on the hr grid at the true pose (simulated data only)",
    )
    ncc: float | None = None
    residual: float | None = None
    transform: Transform | None = None
    intensity: IntensityMatch | None = Field(
        default=None, description="intensity match applied to hr; None: hr as acquired"
    )
    extra: dict[str, Any] = Field(default_factory=dict)


class PairSet(BaseModel):
    """Contents of ``pairs.json``."""

    model_config = ConfigDict(frozen=True)

    format_version: Literal[1] = PAIRS_VERSION
    scale: float = Field(gt=1.0)
    channels: int
    max_value: float = Field(gt=0, description="white level of the stored intensities")
    lr_pixel_size_um: float = Field(gt=0)
    hr_pixel_size_um: float = Field(gt=0)
    source: str = ""
    edof: bool = False
    flat_field: dict[str, float] = Field(
        default_factory=dict,
        description="roles (tile, target) flat-field corrected: fall-off of their blank frames",
    )
    seed: int = 0
    pairs: list[Pair]

    def accepted(self, split: Split | None = None) -> list[Pair]:
        """Accepted pairs, optionally of one split."""
        return [p for p in self.pairs if p.accepted and (split is None or p.split == split)]


def save_pairset(directory: str | Path, pairset: PairSet) -> Path:
    """Write ``pairs.json`` atomically into *directory*."""
    path = Path(directory) / PAIRS_NAME
    atomic_write_text(path, pairset.model_dump_json(indent=2) + "\n")
    return path


def load_pairset(directory: str | Path) -> PairSet:
    """Read and validate ``pairs.json`` of a pairs directory."""
    path = Path(directory) / PAIRS_NAME
    if not path.is_file():
        why = f"{directory} is not a pairs directory: {PAIRS_NAME} is missing"
        if (Path(directory) / "pairs").is_dir():
            why += "; a registration into it did not finish, rerun deepscope register"
        raise InputError(why)
    return load_validated(path, PairSet, "pairs file")


def load_pair(directory: str | Path, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """The ``(lr, hr)`` images of an accepted pair as ``(y, x, c)`` arrays."""
    if pair.lr is None or pair.hr is None:
        raise InputError(f"pair {pair.pair_id} was rejected ({pair.reason}); it has no images")
    lr, _ = read_ome_tiff(safe_join(directory, pair.lr))
    hr, _ = read_ome_tiff(safe_join(directory, pair.hr))
    return lr[0], hr[0]
