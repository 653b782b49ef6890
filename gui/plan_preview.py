"""Where a plan's fields will go, over a quick low-resolution overview of its region.

:func:`plan_layout` asks the core for each objective's field of view (the plan's camera ROI
at that objective's pixel size), lays out the 40x tiles and draws the 100x target centres
exactly as the acquisition will (``acquire.layout``), and snaps the tile objective once per
tile, downsampled into one mosaic. The stage, objective and ROI are put back afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from acquire import layout
from deepscope.errors import InputError
from gui.display import downsample

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

    from acquire.plan import AcquisitionPlan
    from acquire.profile import MicroscopeProfile

#: Snaps an overview may take; a larger region is laid out without one.
MAX_OVERVIEW_SNAPS = 36
#: Longest side of an overview tile after downsampling (pixels).
OVERVIEW_TILE_PX = 64


@dataclass(frozen=True)
class PlanLayout:
    """Rectangles ``(x_um, y_um, width_um, height_um)`` of the plan's fields and its overview."""

    tiles: list[tuple[float, float, float, float]]
    targets: list[tuple[float, float, float, float]]
    overview: np.ndarray | None
    overview_rect: tuple[float, float, float, float] | None
    note: str


def _rect(x: float, y: float, fov: tuple[float, float]) -> tuple[float, float, float, float]:
    return x - fov[0] / 2, y - fov[1] / 2, fov[0], fov[1]


def _fov_um(core: CMMCorePlus, group: str, objective: str) -> tuple[float, float]:
    presets = list(core.getAvailableConfigs(group)) if core.isGroupDefined(group) else []
    if objective not in presets:
        raise InputError(
            f"objective {objective!r} is not a preset of config group {group!r}; "
            f"expected one of: {', '.join(presets) or '(group missing)'}"
        )
    core.setConfig(group, objective)
    core.waitForConfig(group, objective)
    px = float(core.getPixelSizeUm())
    if px <= 0:
        raise InputError(f"no pixel size is configured for objective {objective!r}")
    return core.getImageWidth() * px, core.getImageHeight() * px


def _mosaic(
    core: CMMCorePlus, tiles: list[layout.FieldSpec], fov: tuple[float, float]
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Snap each tile, downsample it and paste it at its place (the image axes: stage axes)."""
    factor = max(1, -(-max(core.getImageWidth(), core.getImageHeight()) // OVERVIEW_TILE_PX))
    um_per_px = fov[0] / core.getImageWidth() * factor
    x0 = min(t.x_um for t in tiles) - fov[0] / 2
    y0 = min(t.y_um for t in tiles) - fov[1] / 2
    x1 = max(t.x_um for t in tiles) + fov[0] / 2
    y1 = max(t.y_um for t in tiles) + fov[1] / 2
    canvas: np.ndarray | None = None
    for t in tiles:
        core.setXYPosition(t.x_um, t.y_um)
        core.waitForDevice(core.getXYStageDevice())
        core.snapImage()
        small = downsample(np.asarray(core.getImage()), factor).astype(np.float32)
        if canvas is None:
            size = (round((y1 - y0) / um_per_px) + 1, round((x1 - x0) / um_per_px) + 1)
            canvas = np.zeros(size + small.shape[2:], np.float32)
        r = round((t.y_um - fov[1] / 2 - y0) / um_per_px)
        c = round((t.x_um - fov[0] / 2 - x0) / um_per_px)
        part = canvas[r : r + small.shape[0], c : c + small.shape[1]]
        part[...] = small[: part.shape[0], : part.shape[1]]
    assert canvas is not None  # tile_grid gives at least one tile
    return canvas, (x0, y0, canvas.shape[1] * um_per_px, canvas.shape[0] * um_per_px)


def plan_layout(
    plan: AcquisitionPlan,
    core: CMMCorePlus,
    profile: MicroscopeProfile,
    *,
    overview: bool = True,
) -> PlanLayout:
    """Tiles and target fields of *plan* on *core*, and (``overview``) a mosaic of quick snaps.

    Target centres drawn at random (``targets.count``) are the acquisition's own draw; with
    ``skip_empty`` the acquisition may replace some after looking at the tiles.
    """
    group = profile.objective_group
    saved_config = core.getCurrentConfig(group) if core.isGroupDefined(group) else ""
    saved_xy = core.getXYPosition()
    saved_roi = core.getROI()
    saved_exposure = core.getExposure()
    try:
        if plan.camera_roi is not None:
            core.clearROI()
            w, h = plan.camera_roi.width, plan.camera_roi.height
            x = (core.getImageWidth() - w) // 2 if plan.camera_roi.x is None else plan.camera_roi.x
            y = (core.getImageHeight() - h) // 2 if plan.camera_roi.y is None else plan.camera_roi.y
            core.setROI(x, y, w, h)
        target_fov = _fov_um(core, group, plan.targets.objective)
        tile_fov = _fov_um(core, group, plan.tiles.objective)
        tiles = layout.tile_grid(plan.region, tile_fov, plan.tiles.overlap, plan.tiles.objective)
        centres = list(plan.targets.centres_um) or layout.sample_centres(
            plan.region,
            plan.targets.count,
            target_fov,
            seed=plan.targets.seed,
            margin_um=plan.targets.margin_um,
        )
        note = f"{len(tiles)} tiles ({plan.tiles.objective}), {len(centres)} target fields"
        if plan.targets.skip_empty:
            note += " (before skipping empty glass)"
        image, rect = None, None
        if overview and len(tiles) <= MAX_OVERVIEW_SNAPS:
            core.setExposure(plan.tiles.exposure_ms)
            image, rect = _mosaic(core, tiles, tile_fov)
        elif overview:
            note += f"; no overview beyond {MAX_OVERVIEW_SNAPS} tiles"
        return PlanLayout(
            [_rect(t.x_um, t.y_um, tile_fov) for t in tiles],
            [_rect(x, y, target_fov) for x, y in centres],
            image,
            rect,
            note,
        )
    finally:
        core.setROI(*saved_roi)
        core.setExposure(saved_exposure)
        if saved_config:
            core.setConfig(group, saved_config)
        core.setXYPosition(*saved_xy)
        core.waitForSystem()
