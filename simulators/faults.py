"""Fault injection for the simulated camera and stages (off by default, seeded)."""

from __future__ import annotations

import time

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deepscope.errors import HardwareError


class FaultConfig(BaseModel):
    """Probabilities and explicit indices of simulated hardware failures.

    Failures raise :class:`~deepscope.errors.HardwareError` (a ``RuntimeError``) from inside the
    device, so callers see it come out of the core call, as a real device error would.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    camera_failure_rate: float = Field(default=0.0, ge=0, le=1, description="per snap")
    camera_timeout_rate: float = Field(default=0.0, ge=0, le=1, description="per snap")
    camera_timeout_s: float = Field(default=0.5, ge=0, description="wait before a timeout")
    stage_error_rate: float = Field(default=0.0, ge=0, le=1, description="per XY or Z move")
    fail_snaps: tuple[int, ...] = Field(default=(), description="0-based snap numbers that fail")
    fail_moves: tuple[int, ...] = Field(default=(), description="0-based move numbers that fail")


class FaultInjector:
    """Draws the failures a :class:`FaultConfig` asks for, in a reproducible order."""

    def __init__(self, config: FaultConfig | None) -> None:
        self.config = config or FaultConfig()
        self._rng = np.random.default_rng(self.config.seed)
        self.snaps = 0
        self.moves = 0

    def before_snap(self, camera: str) -> None:
        """Raise if this snap should fail (counts every snap)."""
        cfg, k = self.config, self.snaps
        self.snaps += 1
        if k in cfg.fail_snaps or (
            cfg.camera_failure_rate and self._rng.random() < cfg.camera_failure_rate
        ):
            raise HardwareError(f"camera '{camera}' failed to read out frame {k} (simulated fault)")
        if cfg.camera_timeout_rate and self._rng.random() < cfg.camera_timeout_rate:
            time.sleep(cfg.camera_timeout_s)
            raise HardwareError(
                f"camera '{camera}' timed out after {cfg.camera_timeout_s:g} s on frame {k} "
                "(simulated fault)"
            )

    def before_move(self, stage: str) -> None:
        """Raise if this stage move should fail (counts every move)."""
        cfg, k = self.config, self.moves
        self.moves += 1
        if k in cfg.fail_moves or (
            cfg.stage_error_rate and self._rng.random() < cfg.stage_error_rate
        ):
            raise HardwareError(
                f"stage '{stage}' reported a move error on move {k} (simulated fault)"
            )
