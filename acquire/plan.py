"""The acquisition plan: what to image, validated and immutable.

A plan names a rectangular region of the slide, how the tile objective (40x) covers it, where
the target objective (100x) takes its fields, the z-stacks, exposures and autofocus. Plans are
written as YAML or JSON and loaded with :meth:`AcquisitionPlan.from_file`::

    name: small
    region: {x_um: 0, y_um: 0, width_um: 120, height_um: 120}
    camera_roi: {width: 256, height: 256}
    tiles: {objective: 40x, overlap: 0.15, exposure_ms: 5}
    targets: {objective: 100x, count: 4, seed: 1, z: {slices: 3, step_um: 0.4}}
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from deepscope.validated import load_validated, validate_mapping


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Region(_Frozen):
    """Rectangle on the slide in stage coordinates (um); ``x_um, y_um`` is its minimum corner."""

    x_um: float
    y_um: float
    width_um: float = Field(gt=0)
    height_um: float = Field(gt=0)

    @property
    def x_max_um(self) -> float:
        """Largest x inside the region."""
        return self.x_um + self.width_um

    @property
    def y_max_um(self) -> float:
        """Largest y inside the region."""
        return self.y_um + self.height_um

    @property
    def centre_um(self) -> tuple[float, float]:
        """Centre of the region."""
        return self.x_um + self.width_um / 2, self.y_um + self.height_um / 2


class CameraROI(_Frozen):
    """Camera region of interest in pixels; centred on the sensor when ``x``/``y`` are omitted."""

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    x: int | None = Field(default=None, ge=0)
    y: int | None = Field(default=None, ge=0)


class ZStack(_Frozen):
    """Planes around the focus: ``slices`` planes ``step_um`` apart, centred on the focus."""

    slices: int = Field(default=1, ge=1, le=200)
    step_um: float = Field(default=0.4, gt=0, description="distance between planes; must be > 0")

    def offsets_um(self) -> list[float]:
        """Z offsets of the planes relative to the focus, in acquisition order (low to high)."""
        half = (self.slices - 1) / 2
        return [(i - half) * self.step_um for i in range(self.slices)]


class TileSpec(_Frozen):
    """How the tile objective covers the region."""

    objective: str = "40x"
    overlap: float = Field(default=0.15, ge=0, lt=0.9, description="fraction of a field")
    exposure_ms: float = Field(default=10.0, gt=0)
    z: ZStack = Field(default_factory=ZStack)


class TargetSpec(_Frozen):
    """Where the target objective takes its fields: explicit ``centres`` or ``count`` sampled."""

    objective: str = "100x"
    centres_um: tuple[tuple[float, float], ...] = ()
    count: int = Field(default=0, ge=0, le=10_000)
    seed: int = 0
    margin_um: float = Field(default=0.0, ge=0, description="extra distance from region edges")
    skip_empty: bool = Field(default=False, description="avoid empty glass seen in the tiles")
    empty_threshold: float = Field(
        default=0.03,
        ge=0,
        description="minimum contrast (std/mean, 4x4-binned) of the 40x patch under a field",
    )
    exposure_ms: float = Field(default=20.0, gt=0)
    averages: int = Field(
        default=1, ge=1, le=64, description="exposures averaged per plane (less noise, N x time)"
    )
    z: ZStack = Field(default_factory=lambda: ZStack(slices=5, step_um=0.4))

    @model_validator(mode="after")
    def _one_source(self) -> TargetSpec:
        if self.centres_um and self.count:
            raise ValueError("give either centres_um or count, not both")
        return self


class FlatField(_Frozen):
    """Blank-field frames for flat-field correction, taken on bare glass by each objective.

    Each objective takes an averaged frame at its pass's exposure and one at half of it (their
    difference gives the camera's dark level without a shutter); registration corrects every
    frame of that objective with them (vignetting, uneven illumination).
    """

    x_um: float = Field(description="stage x of a bare-glass spot (no tissue, no dust)")
    y_um: float
    frames: int = Field(default=8, ge=1, le=64, description="exposures averaged per blank frame")


class Autofocus(_Frozen):
    """Focus finding: none, a z scan at every field, or a plane fitted through a few scans."""

    mode: Literal["none", "per_field", "focus_map"] = "none"
    range_um: float = Field(default=6.0, gt=0, description="total z range of the scan")
    step_um: float = Field(default=1.0, gt=0)
    map_points: int = Field(default=4, ge=3, le=100, description="scan points of the focus map")


class AcquisitionPlan(_Frozen):
    """A complete paired acquisition: 40x tiles over a region, then 100x fields inside it."""

    version: Literal[1] = 1
    name: str = "acquisition"
    region: Region
    focus_z_um: float | None = Field(default=None, description="nominal focus; current z if None")
    camera_roi: CameraROI | None = None
    tiles: TileSpec = Field(default_factory=TileSpec)
    targets: TargetSpec = Field(default_factory=TargetSpec)
    autofocus: Autofocus = Field(default_factory=Autofocus)
    flat_field: FlatField | None = None
    serpentine: bool = True
    retries: int = Field(default=2, ge=0, le=20, description="re-tries of a field after an error")
    on_failure: Literal["continue", "abort"] = "continue"

    @model_validator(mode="after")
    def _targets_inside(self) -> AcquisitionPlan:
        r = self.region
        for x, y in self.targets.centres_um:
            if not (r.x_um <= x <= r.x_max_um and r.y_um <= y <= r.y_max_um):
                raise ValueError(
                    f"target centre ({x}, {y}) is outside the region "
                    f"x {r.x_um}..{r.x_max_um}, y {r.y_um}..{r.y_max_um}"
                )
        if self.tiles.objective == self.targets.objective:
            raise ValueError("tiles and targets must use different objectives")
        return self

    @classmethod
    def from_file(cls, path: str | Path) -> AcquisitionPlan:
        """Load a plan from a ``.yaml``/``.yml`` or ``.json`` file.

        Raises :class:`~deepscope.errors.InputError` naming the file and the bad field.
        """
        return load_validated(path, cls, "plan")

    @classmethod
    def from_dict(cls, raw: Any, *, source: str = "plan") -> AcquisitionPlan:
        """Validate a mapping (as read from YAML/JSON) into a plan with a one-line error."""
        return validate_mapping(raw, cls, source, "plan")

    def to_file(self, path: str | Path) -> None:
        """Write the plan as YAML or JSON (by suffix)."""
        p = Path(path)
        data = self.model_dump(mode="json")
        if p.suffix.lower() == ".json":
            p.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        else:
            p.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    def plan_hash(self) -> str:
        """SHA-256 of the canonical JSON form; equal plans written differently hash equal."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
