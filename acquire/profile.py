"""The microscope profile: objectives, their calibration and the stage limits.

``deepscope calibrate`` writes it; ``deepscope acquire --profile`` reads it. Without a file the
default profile describes the paper's 40x/0.95 dry and 100x/1.4 oil objectives on an
``Objective`` config group, with no offsets.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from deepscope.atomic import atomic_write_text
from deepscope.errors import InputError
from deepscope.formats.dataset import Calibration
from deepscope.objective import Objective
from deepscope.validated import load_validated


class StageLimits(BaseModel):
    """Travel range of the stages in um; plans outside it are refused before anything moves.

    The defaults are a 100 x 70 mm slide stage with 2 mm of focus travel.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    x_min_um: float = -50_000.0
    x_max_um: float = 50_000.0
    y_min_um: float = -35_000.0
    y_max_um: float = 35_000.0
    z_min_um: float = -1_000.0
    z_max_um: float = 1_000.0

    def check(self, what: str, x_um: float, y_um: float, z_um: float | None = None) -> None:
        """Raise :class:`InputError` if the point is outside the travel range."""
        if not (self.x_min_um <= x_um <= self.x_max_um and self.y_min_um <= y_um <= self.y_max_um):
            raise InputError(
                f"{what} at ({x_um:.1f}, {y_um:.1f}) um is outside the stage limits "
                f"x {self.x_min_um}..{self.x_max_um}, y {self.y_min_um}..{self.y_max_um}"
            )
        if z_um is not None and not self.z_min_um <= z_um <= self.z_max_um:
            raise InputError(
                f"{what} at z {z_um:.2f} um is outside the stage limits "
                f"{self.z_min_um}..{self.z_max_um}"
            )


def _default_objectives() -> dict[str, Objective]:
    return {
        "40x": Objective(magnification=40, na=0.95, immersion="air"),
        "100x": Objective(magnification=100, na=1.4, immersion="oil"),
    }


#: What acquiring without a calibrated profile means (CLI warning, GUI status).
UNCALIBRATED = (
    "no calibrated profile: the 100x fields assume the 100x objective has no xy/z offset from "
    "the 40x (recorded as calibrated=false in dataset.json); run 'deepscope calibrate' and "
    "pass its profile"
)


class MicroscopeProfile(BaseModel):
    """What ``acquire`` needs to know about a microscope beyond the Micro-Manager config.

    ``calibration`` is the offset of the target objective's field centre relative to the tile
    objective's at the same stage position (x, y) and the parfocal difference (z): to image a
    point that the tile objective sees at stage ``(x, y, z)``, the target objective needs the
    stage at ``(x - dx, y - dy, z + dz)``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    version: int = 1
    objective_group: str = "Objective"
    #: objectives on the turret, by their preset in the objective config group
    objectives: dict[str, Objective] = Field(default_factory=_default_objectives)
    calibration: Calibration = Field(default_factory=Calibration)
    calibrated_objectives: tuple[str, str] | None = None
    stage_limits: StageLimits = Field(default_factory=StageLimits)

    @property
    def calibrated(self) -> bool:
        """Whether the offsets were measured by ``deepscope calibrate`` (else assumed 0)."""
        return self.calibrated_objectives is not None

    def objective(self, name: str) -> Objective:
        """The named objective, or an :class:`InputError` listing the known ones."""
        try:
            return self.objectives[name]
        except KeyError:
            known = ", ".join(self.objectives)
            raise InputError(f"objective {name!r} is unknown; expected one of: {known}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> MicroscopeProfile:
        """Load a profile from YAML or JSON."""
        return load_validated(path, cls, "profile")

    def to_file(self, path: str | Path) -> None:
        """Write the profile atomically as YAML or JSON (by suffix)."""
        p = Path(path)
        data = self.model_dump(mode="json")
        if p.suffix.lower() == ".json":
            atomic_write_text(p, json.dumps(data, indent=2) + "\n")
        else:
            atomic_write_text(p, yaml.safe_dump(data, sort_keys=False))
