"""What travels with a camera frame: the device state read back when it was taken.

:class:`FrameMetaReader` is the one reader of it (live frames, the GUI's stage read-out and the
tags of pycromanager's images all come from it); :data:`TAGS` names each value as Micro-Manager
image tags do; :func:`image_meta` turns it into the OME metadata of a saved frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypedDict, cast

from pymmcore_plus import CMMCorePlus

from deepscope.ometiff import ImageMeta, PlaneMeta


class FrameMeta(TypedDict):
    """Stage position (NaN without that stage), objective, pixel size and exposure of a frame."""

    x_um: float
    y_um: float
    z_um: float
    objective: str | None
    pixel_size_um: float
    exposure_ms: float


#: :class:`FrameMeta` keys -> Micro-Manager image tags.
TAGS = {
    "x_um": "XPositionUm",
    "y_um": "YPositionUm",
    "z_um": "ZPositionUm",
    "objective": "Objective-Label",
    "pixel_size_um": "PixelSizeUm",
    "exposure_ms": "Exposure-ms",
}


class FrameMetaReader:
    """Read a frame's stage position, objective, pixel size and exposure back from the core."""

    def __init__(self, core: CMMCorePlus) -> None:
        self.core = core
        objectives = core.guessObjectiveDevices()
        self.objective_device = objectives[0] if objectives else None

    def __call__(self) -> FrameMeta:
        """The current device state."""
        core = self.core
        meta = FrameMeta(
            x_um=math.nan,
            y_um=math.nan,
            z_um=math.nan,
            objective=None,
            pixel_size_um=float(core.getPixelSizeUm()),
            exposure_ms=float(core.getExposure()),
        )
        if core.getXYStageDevice():
            x, y = core.getXYPosition()
            meta["x_um"], meta["y_um"] = float(x), float(y)
        if core.getFocusDevice():
            meta["z_um"] = float(core.getPosition())
        if self.objective_device:
            meta["objective"] = core.getStateLabel(self.objective_device)
        return meta


def to_tags(meta: FrameMeta) -> dict[str, Any]:
    """*meta* as Micro-Manager image tags, leaving out what the microscope does not have."""
    return {
        TAGS[key]: value
        for key, value in meta.items()
        if value is not None and not (isinstance(value, float) and math.isnan(value))
    }


def from_tags(tags: Mapping[str, Any], read: Callable[[], FrameMeta]) -> FrameMeta:
    """Frame meta from an image's Micro-Manager tags; missing ones from *read* (the core)."""
    found: dict[str, Any] = {} if all(tag in tags for tag in TAGS.values()) else dict(read())
    for key, tag in TAGS.items():
        if tag in tags:
            found[key] = str(tags[tag]) if key == "objective" else float(tags[tag])
    return cast(FrameMeta, found)  # every key: from the tags or from read()


def image_meta(
    meta: FrameMeta,
    *,
    name: str,
    pixel_size_um: float | None = None,
    t_s: float | None = None,
    acquired_at: datetime | None = None,
) -> ImageMeta:
    """OME metadata of one saved frame (*pixel_size_um*: another than the frame's, if given)."""
    plane = PlaneMeta(
        x_um=float(meta.get("x_um", math.nan)),
        y_um=float(meta.get("y_um", math.nan)),
        z_um=float(meta.get("z_um", math.nan)),
        exposure_ms=meta.get("exposure_ms"),
        t_s=t_s,
    )
    return ImageMeta(
        pixel_size_um=meta["pixel_size_um"] if pixel_size_um is None else pixel_size_um,
        planes=(plane,),
        objective=meta.get("objective") or None,
        acquired_at=acquired_at,
        name=name,
    )
