"""Versioned, validated configuration of a trained model (saved as ``config.json``)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deepscope import limits

CONFIG_VERSION: Literal[1] = 1


class NetworkConfig(BaseModel):
    """Architecture of the Rivenson et al. (Optica 2017) residual network.

    Defaults reproduce the paper: 3x3 convolutions, 3 -> 32 input convolution, K = 5 residual
    blocks whose widths grow as ``A_k = A_(k-1) + floor(alpha * k / K)`` (34, 38, 44, 52, 62),
    then pixel shuffle and a stride-2 convolution for the scale of 2.5; on top of it, by
    default, a global skip (the network learns the residual over a bicubic upsample;
    ``global_skip=False`` is the exact paper network). These defaults are also the training
    defaults (:class:`~model.training.config.TrainConfig`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    architecture: Literal["dlm-resnet"] = "dlm-resnet"
    scale: float = Field(default=2.5, gt=1.0, description="output/input pixel density, e.g. 2.5")
    channels: int = Field(default=3, description="3 for RGB, 1 for mono")
    base_channels: int = Field(default=32, ge=1)
    num_blocks: int = Field(default=5, ge=1)
    alpha: int = Field(default=10, ge=0)
    global_skip: bool = Field(
        default=True, description="learn the residual over a bicubic upsample (not in the paper)"
    )

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: int) -> int:
        if v not in (1, 3):
            raise ValueError(f"channels={v} is not supported; use 3 (RGB) or 1 (mono)")
        return v

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: float) -> float:
        frac = Fraction(v).limit_denominator(4)
        if abs(float(frac) - v) > 1e-9 or frac.numerator > 8:
            raise ValueError(
                f"scale={v} must be a ratio p/q with q <= 4 and p <= 8 (e.g. 2, 2.5, 4)"
            )
        return v

    @model_validator(mode="after")
    def _size(self) -> NetworkConfig:
        # a lower bound of the weights (two 3x3 convs per block), checked before any loop
        lower = 18 * self.num_blocks * self.base_channels**2
        limits.check(lower, limits.MODEL_PARAMS, "network weights (at least)", " parameters")
        return self

    @property
    def scale_fraction(self) -> Fraction:
        """The scale as ``p/q``: pixel shuffle by ``p``, then a stride-``q`` convolution."""
        return Fraction(self.scale).limit_denominator(4)

    def channel_pyramid(self) -> list[int]:
        """Channel counts ``[A_0, ..., A_K]`` of the input conv and each residual block."""
        widths = [self.base_channels]
        for k in range(1, self.num_blocks + 1):
            widths.append(widths[-1] + (self.alpha * k) // self.num_blocks)
        return widths


class Normalisation(BaseModel):
    """Intensity normalisation, ``x_norm = (x - offset) / scale``, per channel."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    input_offset: tuple[float, ...]
    input_scale: tuple[float, ...]
    target_offset: tuple[float, ...]
    target_scale: tuple[float, ...]

    @field_validator("input_scale", "target_scale")
    @classmethod
    def _positive(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(x <= 0 for x in v):
            raise ValueError(
                f"scales must be positive per channel (a 0 makes every pixel 0), got {v}"
            )
        return v

    @classmethod
    def identity(cls, channels: int, max_value: float = 1.0) -> Normalisation:
        """Map ``[0, max_value]`` to ``[0, 1]`` for input and target alike."""
        zeros = (0.0,) * channels
        ones = (float(max_value),) * channels
        return cls(input_offset=zeros, input_scale=ones, target_offset=zeros, target_scale=ones)


class ModelConfig(BaseModel):
    """Everything needed to rebuild, feed and judge a trained model."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    format_version: Literal[1] = CONFIG_VERSION
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    normalisation: Normalisation = Field(default_factory=lambda: Normalisation.identity(3))
    input_pixel_size_um: float | None = Field(default=None, gt=0)
    output_pixel_size_um: float | None = Field(default=None, gt=0)
    provenance: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
