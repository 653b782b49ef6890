"""Training settings (:class:`TrainConfig`, saved as ``train_config.json`` beside the model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from deepscope.validated import load_validated
from model.config import NetworkConfig

TRAIN_CONFIG_NAME = "train_config.json"

#: Settings that may change between a run and its resume: the budget and where it runs.
RESUMABLE_CHANGES = frozenset({"steps", "minutes", "device", "val_every"})

LossName = Literal["mse_grad", "l1", "l1_ssim"]
#: The network's fields, whose defaults are the training defaults of the architecture.
_NETWORK = NetworkConfig.model_fields


class TrainConfig(BaseModel):
    """Hyper-parameters of one training run.

    The budget is a number of optimizer steps (``steps``) and optionally a wall-clock limit
    (``minutes``); the learning rate warms up linearly and then follows a cosine to zero at
    whichever budget ends first. Every step draws fresh random crops (with flips and rotations)
    from all training fields. The architecture settings default to
    :class:`~model.config.NetworkConfig`'s: the paper's network with ``global_skip`` (learn the
    residual over bicubic) on; ``global_skip=False`` trains the exact paper network with the
    same recipe.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(default=2000, ge=1, description="optimizer steps (the training budget)")
    minutes: float | None = Field(
        default=None, gt=0, description="wall-clock budget (training ends at the first budget)"
    )
    batch_size: int = Field(default=16, ge=1, description="crops per step (split over DDP ranks)")
    lr: float = Field(default=1e-3, gt=0, description="peak Adam learning rate")
    warmup: float = Field(
        default=0.05, ge=0, lt=1, description="fraction of the budget spent warming up the rate"
    )
    loss: LossName = Field(
        default="l1_ssim",
        description="'mse_grad' (the paper: MSE + lambda*gradient), 'l1', or 'l1_ssim' "
        "(L1 + SSIM from pytorch-msssim)",
    )
    ssim_weight: float = Field(
        default=0.5, ge=0, le=1, description="weight of 1 - SSIM in 'l1_ssim' (L1 gets the rest)"
    )
    grad_lambda: float = Field(
        default=1e-3, ge=0, description="weight of the output-gradient penalty of 'mse_grad'"
    )
    patch_size: int = Field(default=60, ge=8, description="40x crop side (100x: x scale)")
    augment: bool = Field(default=True, description="random flips and 90-degree rotations")
    normalisation: Literal["white_level", "mean_std"] = Field(
        default="white_level", description="'white_level' ([0, max] -> [0, 1]) or 'mean_std'"
    )
    val_every: int = Field(
        default=100, ge=1, description="steps between validations (also at the end)"
    )
    early_stop_patience: int = Field(
        default=0, ge=0, description="validations without a PSNR gain before stopping (0: never)"
    )
    checkpoint_every: int = Field(default=50, ge=1, description="steps between checkpoints")
    seed: int = Field(default=0, description="seeds init, crops and augmentation")
    device: str = Field(
        default="auto",
        description="'auto', 'cpu', 'cuda' or 'cuda:N'",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
    )
    deterministic: bool | None = Field(
        default=None,
        description="deterministic kernels; None: on for the CPU, off on CUDA (cudnn.benchmark)",
    )
    global_skip: bool = _NETWORK["global_skip"].default
    num_blocks: int = Field(default=_NETWORK["num_blocks"].default, ge=1)
    base_channels: int = Field(default=_NETWORK["base_channels"].default, ge=1)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a JSON (or YAML) file, e.g. one written by ``model_dump_json``."""
        return load_validated(path, cls, "training config")


@dataclass(frozen=True)
class ValMetrics:
    """One validation: passed to the ``progress`` callback and written to metrics.csv."""

    step: int
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
    steps: int
    best_step: int
    best_val_ssim: float
    best_val_psnr: float
    bicubic_val_ssim: float
    bicubic_val_psnr: float
    beats_bicubic: bool
    steps_per_second: float
    history: list[ValMetrics] = field(default_factory=list)
