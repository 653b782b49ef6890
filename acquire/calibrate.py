"""Measure the target objective's offset from the tile objective: xy by registration, z by focus.

Both objectives image the same stage position. Each is focused by a coarse then a fine z scan
(normalized variance); the parfocal offset is the difference of the two focus positions. The
target image, downsampled by the pixel-size ratio, is located in the tile image by normalized
cross-correlation and refined to sub-pixel precision with
:func:`skimage.registration.phase_cross_correlation`; the position of its centre relative to the
tile image's centre is the xy offset.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict
from skimage.registration import phase_cross_correlation
from skimage.transform import rescale

from acquire.autofocus import z_scan
from acquire.backends import Scope
from acquire.plan import CameraROI
from acquire.profile import MicroscopeProfile
from deepscope.errors import HardwareError, InputError
from deepscope.formats.dataset import Calibration
from deepscope.imaging import to_gray

log = logging.getLogger("deepscope.acquire")


class CalibrationResult(BaseModel):
    """Measured offsets with the quality of the xy match."""

    model_config = ConfigDict(frozen=True)

    calibration: Calibration
    tile_focus_z_um: float
    target_focus_z_um: float
    match_score: float
    pixel_size_ratio: float


def _focus(scope: Scope, z0: float, range_um: float) -> float:
    coarse = z_scan(scope.snap_at, z0, range_um, 1.0)
    return z_scan(scope.snap_at, coarse, 1.2, 0.2)


def locate(tile: np.ndarray, target: np.ndarray, ratio: float) -> tuple[float, float, float]:
    """Offset ``(dx, dy)`` in tile pixels of *target*'s centre from *tile*'s centre, and score.

    *target* is downsampled by *ratio* (target pixel size / tile pixel size) first.
    """
    tile_g = to_gray(tile)
    small = rescale(to_gray(target), ratio, anti_aliasing=True, preserve_range=True)
    small = small.astype(np.float32)
    th, tw = small.shape
    if th >= tile_g.shape[0] or tw >= tile_g.shape[1]:
        raise InputError(
            "the target field is not smaller than the tile field; check the objectives"
        )
    ncc = cv2.matchTemplate(tile_g, small, cv2.TM_CCOEFF_NORMED)
    _, score, _, (c0, r0) = cv2.minMaxLoc(ncc)
    crop = tile_g[r0 : r0 + th, c0 : c0 + tw]
    shift, _, _ = phase_cross_correlation(crop, small, upsample_factor=20, normalization=None)
    # shift moves `small` onto `crop`: the template sits at (r0, c0) - shift in the tile
    row = r0 - shift[0] + (th - 1) / 2
    col = c0 - shift[1] + (tw - 1) / 2
    h, w = tile_g.shape
    return col - (w - 1) / 2, row - (h - 1) / 2, float(score)


def calibrate(
    scope: Scope,
    profile: MicroscopeProfile,
    *,
    tile_objective: str = "40x",
    target_objective: str = "100x",
    x_um: float | None = None,
    y_um: float | None = None,
    z_um: float | None = None,
    roi: CameraROI | None = None,
    focus_range_um: float = 8.0,
    exposure_ms: float = 10.0,
    min_score: float = 0.5,
) -> CalibrationResult:
    """Measure the offsets of *target_objective* relative to *tile_objective* at one position.

    Choose a position with structure (tissue, a target), not empty glass. Raises
    :class:`HardwareError` when the match is too weak to trust (score below *min_score*).
    """
    group = profile.objective_group
    for name in (tile_objective, target_objective):
        profile.objective(name)
        if name not in scope.presets(group):
            raise InputError(f"objective {name!r} is not a preset of config group {group!r}")
    x0, y0, zc = scope.position()
    x = x0 if x_um is None else x_um
    y = y0 if y_um is None else y_um
    z0 = zc if z_um is None else z_um
    profile.stage_limits.check("calibration position", x, y, z0)
    if roi is not None:
        scope.set_roi(roi)
    scope.set_exposure(exposure_ms)
    scope.move_xy(x, y)
    images, focus, pixel = {}, {}, {}
    for name in (tile_objective, target_objective):
        scope.set_objective(group, name)
        pixel[name] = scope.pixel_size_um()
        focus[name] = _focus(scope, z0, focus_range_um)
        images[name] = scope.snap_at(focus[name])
        log.info("%s in focus at z = %.3f um", name, focus[name])
    scope.set_objective(group, tile_objective)
    scope.move_z(focus[tile_objective])
    ratio = pixel[target_objective] / pixel[tile_objective]
    dcol, drow, score = locate(images[tile_objective], images[target_objective], ratio)
    if score < min_score:
        raise HardwareError(
            f"calibration match too weak (NCC {score:.2f} < {min_score}); "
            "move to a position with structure and check focus"
        )
    px = pixel[tile_objective]
    cal = Calibration(
        dx_um=float(dcol * px),
        dy_um=float(drow * px),
        dz_um=float(focus[target_objective] - focus[tile_objective]),
    )
    return CalibrationResult(
        calibration=cal,
        tile_focus_z_um=focus[tile_objective],
        target_focus_z_um=focus[target_objective],
        match_score=score,
        pixel_size_ratio=ratio,
    )


def calibrated_profile(
    profile: MicroscopeProfile, result: CalibrationResult, tile: str, target: str
) -> MicroscopeProfile:
    """*profile* with the measured calibration."""
    return profile.model_copy(
        update={"calibration": result.calibration, "calibrated_objectives": (tile, target)}
    )
