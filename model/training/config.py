"""Training settings (:class:`TrainConfig`, saved as ``train_config.json`` beside the model)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deepscope.errors import InputError
from deepscope.paths import read_user_text

TRAIN_CONFIG_NAME = "train_config.json"


class TrainConfig(BaseModel):
    """Hyper-parameters of one training run; defaults follow Rivenson et al. (2017).

    ``global_skip`` (learn the residual over bicubic) is not in the paper; it makes short CPU
    budgets converge and is on by default. Set it to ``False`` for the paper's network.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(default=30, ge=1, description="passes over the training patches")
    batch_size: int = Field(default=64, ge=1, description="global batch (split over DDP ranks)")
    lr: float = Field(default=1e-4, gt=0, description="Adam learning rate")
    grad_lambda: float = Field(
        default=1e-3, ge=0, description="weight of the output image-gradient penalty"
    )
    patch_size: int = Field(default=60, ge=8, description="40x patch side (100x: x scale)")
    overlap: float = Field(default=0.4, ge=0, lt=1, description="patch overlap fraction")
    augment: bool = Field(default=True, description="random flips and 90-degree rotations")
    normalisation: Literal["white_level", "mean_std"] = Field(
        default="white_level", description="'white_level' ([0, max] -> [0, 1]) or 'mean_std'"
    )
    lr_schedule: Literal["none", "cosine", "plateau"] = Field(
        default="none", description="'none', 'cosine' or 'plateau' (halve on flat val SSIM)"
    )
    early_stop_patience: int = Field(
        default=10, ge=0, description="epochs without val SSIM gain (0: never stop)"
    )
    checkpoint_every: int = Field(default=50, ge=1, description="steps between checkpoints")
    seed: int = Field(default=0, description="seeds init, shuffling and augmentation")
    device: str = Field(default="auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'")
    deterministic: bool | None = Field(
        default=None,
        description="deterministic kernels; None: on for the CPU, off on CUDA (cudnn.benchmark)",
    )
    global_skip: bool = True
    num_blocks: int = Field(default=5, ge=1)
    base_channels: int = Field(default=32, ge=1)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a JSON file written by :meth:`pydantic.BaseModel.model_dump_json`."""
        p = Path(path)
        try:
            return cls.model_validate(json.loads(read_user_text(p, "training config")))
        except (json.JSONDecodeError, ValidationError) as exc:
            first = str(exc).splitlines()[0]
            raise InputError(f"{p}: not a valid training config ({first})") from exc


@dataclass(frozen=True)
class EpochMetrics:
    """Summary of one epoch, passed to the ``progress`` callback and written to metrics.csv."""

    epoch: int
    train_loss: float
    val_ssim: float
    val_psnr: float
    lr: float
    seconds: float
    patches: int


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`~model.training.train.train_model`."""

    model_dir: Path
    completed: bool
    stopped_early: bool
    best_epoch: int
    best_val_ssim: float
    best_val_psnr: float
    bicubic_val_ssim: float
    bicubic_val_psnr: float
    history: list[EpochMetrics] = field(default_factory=list)
