"""``acquire PLAN --dry-run``: check a plan against the microscope, count fields, estimate travel.

Nothing moves: pixel sizes come from the configuration's pixel-size presets of each objective
(not by swinging the turret), the field of view from the plan's camera ROI or the sensor, and
the stage path from the same tile grid and target sampling the acquisition uses.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

from pydantic import BaseModel

from acquire import layout
from acquire.backends import Scope, roi_corner
from acquire.plan import AcquisitionPlan
from acquire.profile import MicroscopeProfile
from acquire.runner import check_limits
from deepscope.errors import InputError

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

#: Assumed for the time estimate (the plan cannot know them): stage speed and settling per move.
STAGE_SPEED_UM_S = 5000.0
SETTLE_S = 0.05


class DryRun(BaseModel):
    """What a plan would do on this microscope."""

    tiles: int
    targets: int
    images: int
    tile_fov_um: tuple[float, float]
    target_fov_um: tuple[float, float]
    pixel_size_um: dict[str, float]
    travel_um: float
    moves: int
    exposure_s: float
    estimate_s: float
    assumptions: dict[str, float]
    calibrated: bool


def objective_pixel_size(core: CMMCorePlus, group: str, objective: str) -> float:
    """Pixel size of preset *objective* of config group *group*; 0.0 when none matches.

    Read from the pixel-size presets whose settings the objective preset contains, without
    applying the preset.
    """
    wanted = {tuple(map(str, s)) for s in core.getConfigData(group, objective)}
    for res_id in core.getAvailablePixelSizeConfigs():
        settings = {tuple(map(str, s)) for s in core.getPixelSizeConfigData(res_id)}
        if settings and settings <= wanted:
            return float(core.getPixelSizeUmByID(res_id))
    return 0.0


def dry_run(plan: AcquisitionPlan, scope: Scope, profile: MicroscopeProfile) -> DryRun:
    """Check *plan* on *scope* and estimate it; raises InputError for what would fail."""
    core = scope.local
    if core is None:
        raise InputError("--dry-run reads the configuration in this process; use --mm-config")
    group = profile.objective_group
    if plan.camera_roi is not None:
        width, height = plan.camera_roi.width, plan.camera_roi.height
        roi_corner(plan.camera_roi, int(core.getImageWidth()), int(core.getImageHeight()))
    else:
        width, height = int(core.getImageWidth()), int(core.getImageHeight())
    pixel: dict[str, float] = {}
    for name in (plan.tiles.objective, plan.targets.objective):
        profile.objective(name)
        if name not in scope.presets(group):
            raise InputError(f"objective {name!r} is not a preset of config group {group!r}")
        if (px := objective_pixel_size(core, group, name)) <= 0:
            raise InputError(f"no pixel size is configured for objective {name!r}")
        pixel[name] = px
    tile_fov = (width * pixel[plan.tiles.objective], height * pixel[plan.tiles.objective])
    target_fov = (width * pixel[plan.targets.objective], height * pixel[plan.targets.objective])
    tiles = layout.tile_grid(
        plan.region, tile_fov, plan.tiles.overlap, plan.tiles.objective, serpentine=plan.serpentine
    )
    t = plan.targets
    centres = list(t.centres_um) or layout.sample_centres(
        plan.region, t.count, target_fov, seed=t.seed, margin_um=t.margin_um
    )
    x0, y0, z0 = scope.position()
    check_limits(plan, profile, tiles, plan.focus_z_um if plan.focus_z_um is not None else z0)
    path = [(x0, y0), *((f.x_um, f.y_um) for f in tiles)]
    path += [(x - profile.calibration.dx_um, y - profile.calibration.dy_um) for x, y in centres]
    travel = sum(math.dist(a, b) for a, b in itertools.pairwise(path))
    af = plan.autofocus
    focus_planes = int(af.range_um / af.step_um) + 1 if af.mode == "per_field" else 0
    tile_images = len(tiles) * (plan.tiles.z.slices + focus_planes)
    target_images = len(centres) * (t.z.slices * t.averages + focus_planes)
    exposure_s = (tile_images * plan.tiles.exposure_ms + target_images * t.exposure_ms) / 1000
    moves = len(path) - 1
    if (ff := plan.flat_field) is not None:  # per objective: frames at full and half exposure
        tile_images += 2 * ff.frames
        target_images += 2 * ff.frames
        exposure_s += 1.5 * ff.frames * (plan.tiles.exposure_ms + t.exposure_ms) / 1000
        ff_xy = (ff.x_um, ff.y_um)
        travel += 2 * (math.dist(path[len(tiles)], ff_xy) + math.dist(ff_xy, path[-1]))
        moves += 4
    return DryRun(
        tiles=len(tiles),
        targets=len(centres),
        images=tile_images + target_images,
        tile_fov_um=tile_fov,
        target_fov_um=target_fov,
        pixel_size_um=pixel,
        travel_um=round(travel, 1),
        moves=moves,
        exposure_s=round(exposure_s, 3),
        estimate_s=round(exposure_s + travel / STAGE_SPEED_UM_S + moves * SETTLE_S, 1),
        assumptions={"stage_speed_um_s": STAGE_SPEED_UM_S, "settle_s_per_move": SETTLE_S},
        calibrated=profile.calibrated,
    )
