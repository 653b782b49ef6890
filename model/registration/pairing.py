"""100x fields against the stitched 40x tiles: locate, refine, check, crop and warp.

First pass, per field (each step can reject the field with a reason):

1. the z-stack becomes one image (wavelet EDOF, or the best-focus slice);
2. empty glass (too little contrast) is rejected;
3. the field, downsampled to the 40x pixel size (area interpolation, grayscale), is found by
   normalized cross-correlation in a window around its expected place (stage position plus
   the calibrated objective offset); a 100x image much blurrier than the 40x image there is
   out of focus; a best match on the window's edge means the field lies outside the window;
   a too low NCC is rejected;
4. ECC fits an affine map against the single tile holding most of the field (both images
   flat-fielded, so that vignetting does not pull the fit); the nearest similarity is the
   field's own estimate and its distance from the affine map the residual.

Rotation and magnification belong to the objectives, not to the fields, so the second pass
fits one common rotation and scale to all fields (maximising their summed ECC correlation,
each field free to shift) and re-fits each field's translation with it. Finally the largest
40x rectangle inside the field is cropped from its tile (raw pixels) and the 100x image is
warped onto a grid exactly ``scale`` times finer covering the same area.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from scipy.optimize import minimize

from deepscope.ometiff import ImageMeta
from model.registration import align
from model.registration.focus import (
    best_focus_index,
    edof_wavelet,
    sharpness,
    texture,
    to_gray,
)
from model.registration.stitch import Mosaic

#: Margin (40x pixels) kept inside the field's footprint when cropping, for interpolation.
CROP_MARGIN_PX = 1
#: Template border left out of the ECC refinement (40x pixels): coarse-match slack.
TEMPLATE_MARGIN_PX = 6
#: Extra context around the template in the tile for ECC (40x pixels).
WINDOW_MARGIN_PX = 12
#: Largest credible move of a refinement away from the previous estimate (40x pixels).
MAX_REFINE_MOVE_PX = 3.0
#: Shading removal scale (40x pixels) before ECC.
FLAT_SIGMA_PX = 4.0
#: Most fields used to fit the common rotation and scale.
COMMON_FIT_FIELDS = 16
#: Smoothing of the 100x image (in 40x pixels) before it is downsampled, against aliasing.
ANTIALIAS_SIGMA_PX = 0.5


@dataclass(frozen=True)
class Thresholds:
    """QC limits applied to every field."""

    min_ncc: float
    min_texture: float
    min_focus_ratio: float
    max_scale_error: float
    min_crop_px: int
    search_radius_px: int


@dataclass
class TileSet:
    """Stitched tiles: colour images for cropping, flat-fielded grays for the fits."""

    images: list[np.ndarray]
    flats: list[np.ndarray]
    centres_um: np.ndarray
    mosaic: Mosaic
    mosaic_gray: np.ndarray
    pixel_um: float
    ids: list[str]
    raw_peak: float = 0.0  # largest stored value before flat-field correction
    #: each tile's file metadata at the plane used (:func:`~model.registration.provenance.at_plane`)
    sources: list[ImageMeta] = field(default_factory=list)

    def slide_to_mosaic(self, x_um: float, y_um: float) -> tuple[float, float]:
        """Mosaic pixel of a slide position, through the nearest tile's stage position."""
        k = int(np.argmin(np.hypot(*(self.centres_um - (x_um, y_um)).T)))
        th, tw = self.mosaic.tile_shape
        px, py = self.mosaic.positions[k]
        cx, cy = self.centres_um[k]
        return (
            px + (tw - 1) / 2 + (x_um - cx) / self.pixel_um,
            py + (th - 1) / 2 + (y_um - cy) / self.pixel_um,
        )


@dataclass
class Located:
    """A field found and fitted on its own (first pass)."""

    small: np.ndarray
    to_small: np.ndarray
    hr_shape: tuple[int, int]
    tile: int
    tpl_box: tuple[int, int, int, int]
    win_box: tuple[int, int, int, int]
    affine: np.ndarray
    similarity: np.ndarray
    ecc: float
    metrics: dict[str, Any]

    def template(self) -> np.ndarray:
        """The part of the flat-fielded, downsampled field used by ECC."""
        x0, y0, x1, y1 = self.tpl_box
        return self.small[y0:y1, x0:x1]

    def window(self, tiles: TileSet) -> np.ndarray:
        """The flat-fielded part of the tile searched by ECC."""
        x0, y0, x1, y1 = self.win_box
        return tiles.flats[self.tile][y0:y1, x0:x1]

    def to_ecc(self, hr_to_tile: np.ndarray) -> np.ndarray:
        """Express an hr->tile map as the template->window map ECC works on."""
        x0, y0 = self.tpl_box[:2]
        return align.compose(
            align.translation(-self.win_box[0], -self.win_box[1]),
            hr_to_tile,
            align.invert(self.to_small),
            align.translation(x0, y0),
        )

    def from_ecc(self, warp: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_ecc`."""
        x0, y0 = self.tpl_box[:2]
        return align.compose(
            align.translation(self.win_box[0], self.win_box[1]),
            warp,
            align.translation(-x0, -y0),
            self.to_small,
        )


@dataclass
class Rejection:
    """Why a field was not used, with what was measured until then."""

    reason: str
    metrics: dict[str, Any]


def collapse_stack(stack: np.ndarray, edof: bool) -> tuple[np.ndarray, str, float]:
    """``(z, y, x, c)`` -> ``(y, x, c)`` float32 by EDOF or best-focus slice.

    Also returns how, and the plane index the image stands for (an EDOF image: the centre).
    """
    if stack.shape[0] == 1:
        return stack[0].astype(np.float32), "single plane", 0.0
    if edof:
        return edof_wavelet(stack), "edof", (stack.shape[0] - 1) / 2
    k = best_focus_index(stack)
    return stack[k].astype(np.float32), f"slice {k}", float(k)


def locate_field(
    image: np.ndarray,
    x_um: float,
    y_um: float,
    hr_pixel_um: float,
    tiles: TileSet,
    limits: Thresholds,
) -> Located | Rejection:
    """First pass for one collapsed ``(y, x, c)`` 100x image centred near ``(x_um, y_um)``."""
    gray = to_gray(image)
    h, w = gray.shape
    f = hr_pixel_um / tiles.pixel_um
    dw, dh = max(8, round(w * f)), max(8, round(h * f))
    smooth = cv2.GaussianBlur(gray, (0, 0), ANTIALIAS_SIGMA_PX / f)
    small = cv2.resize(smooth, (dw, dh), interpolation=cv2.INTER_AREA)
    to_small = align.scaling(dw / w, dh / h)
    contrast = texture(small, FLAT_SIGMA_PX * 2)
    metrics: dict[str, Any] = {"texture": round(contrast, 4)}
    if contrast < limits.min_texture:
        return Rejection(
            f"empty field: texture {contrast:.3f} < {limits.min_texture} (bare glass?)", metrics
        )
    cx, cy = tiles.slide_to_mosaic(x_um, y_um)
    ex, ey = cx - (dw - 1) / 2, cy - (dh - 1) / 2
    mosaic = tiles.mosaic_gray
    try:
        match = align.locate(mosaic, small, ex, ey, limits.search_radius_px)
    except ValueError:
        return Rejection("outside the search window: the field is off the mosaic", metrics)
    metrics["coarse_ncc"] = round(match.ncc, 4)
    metrics["prior_error_px"] = round(float(np.hypot(match.x - ex, match.y - ey)), 2)
    patch = mosaic[match.y : match.y + dh, match.x : match.x + dw]
    focus_ratio = sharpness(small) / max(sharpness(patch), 1e-9)
    metrics["focus_ratio"] = round(focus_ratio, 3)
    if focus_ratio < limits.min_focus_ratio:
        return Rejection(
            f"out of focus: 100x sharpness {focus_ratio:.2f} of the 40x "
            f"(< {limits.min_focus_ratio})",
            metrics,
        )
    if match.at_edge:
        return Rejection(
            f"outside the search window: best match (NCC {match.ncc:.2f}) on the edge of the "
            f"+-{limits.search_radius_px} px window",
            metrics,
        )
    if match.ncc < limits.min_ncc:
        return Rejection(f"NCC too low: {match.ncc:.2f} < {limits.min_ncc}", metrics)
    return _fit_own(
        align.flatten(small, FLAT_SIGMA_PX), to_small, (h, w), match, tiles, limits, metrics
    )


def _fit_own(
    small: np.ndarray,
    to_small: np.ndarray,
    hr_shape: tuple[int, int],
    match: align.Match,
    tiles: TileSet,
    limits: Thresholds,
    metrics: dict[str, Any],
) -> Located | Rejection:
    h, w = hr_shape
    dh, dw = small.shape
    th, tw = tiles.mosaic.tile_shape
    # the tile holding most of the field (positions rounded as in the composed mosaic)
    pos = np.round(tiles.mosaic.positions).astype(int)
    ox = np.minimum(pos[:, 0] + tw, match.x + dw) - np.maximum(pos[:, 0], match.x)
    oy = np.minimum(pos[:, 1] + th, match.y + dh) - np.maximum(pos[:, 1], match.y)
    k = int(np.argmax(np.clip(ox, 0, None) * np.clip(oy, 0, None)))
    tx, ty = match.x - pos[k, 0], match.y - pos[k, 1]  # template top-left in tile k
    m = TEMPLATE_MARGIN_PX
    sx0, sy0 = max(m, -tx + m), max(m, -ty + m)
    sx1, sy1 = min(dw - m, tw - tx - m), min(dh - m, th - ty - m)
    if sx1 - sx0 < limits.min_crop_px or sy1 - sy0 < limits.min_crop_px:
        return Rejection("too small: too little of the field lies inside one 40x tile", metrics)
    wx0, wy0 = max(0, tx + sx0 - WINDOW_MARGIN_PX), max(0, ty + sy0 - WINDOW_MARGIN_PX)
    wx1, wy1 = min(tw, tx + sx1 + WINDOW_MARGIN_PX), min(th, ty + sy1 + WINDOW_MARGIN_PX)
    loc = Located(
        small,
        to_small,
        hr_shape,
        k,
        (sx0, sy0, sx1, sy1),
        (wx0, wy0, wx1, wy1),
        np.zeros((2, 3)),
        np.zeros((2, 3)),
        0.0,
        metrics,
    )
    coarse = align.compose(align.translation(tx, ty), to_small)  # hr -> tile, from the match
    try:
        warp, ecc = align.refine_ecc(loc.template(), loc.window(tiles), loc.to_ecc(coarse))
    except cv2.error:
        return Rejection("refinement failed: ECC did not converge", metrics)
    affine = loc.from_ecc(warp)
    sim, _ = align.nearest_similarity(affine, w, h)
    _, _, rot, s = align.similarity_params(sim)
    nominal = dw / w
    move = _centre_move(sim, coarse, w, h)
    metrics.update(
        tile=tiles.ids[k],
        ecc_own=round(ecc, 4),
        rotation_own_deg=round(rot, 4),
        scale_own=round(s / nominal, 6),
        refine_move_px=round(move, 3),
    )
    if abs(s / nominal - 1) > limits.max_scale_error or move > MAX_REFINE_MOVE_PX:
        return Rejection(
            f"refinement diverged: scale {s / nominal:.3f} x nominal, moved {move:.1f} px",
            metrics,
        )
    if ecc < limits.min_ncc:
        return Rejection(f"NCC too low: {ecc:.2f} < {limits.min_ncc} after refinement", metrics)
    loc.affine, loc.similarity, loc.ecc = affine, sim, ecc
    return loc


def _centre_move(a: np.ndarray, b: np.ndarray, w: int, h: int) -> float:
    centre = np.array([[(w - 1) / 2, (h - 1) / 2]])
    return float(np.linalg.norm(align.apply(a, centre)[0] - align.apply(b, centre)[0]))


def _with_linear(loc: Located, linear: np.ndarray) -> np.ndarray:
    """hr->tile map with the given linear part, keeping the field centre where *loc* has it."""
    h, w = loc.hr_shape
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    target = align.apply(loc.similarity, centre[None])[0]
    return np.column_stack([linear, target - linear @ centre])


def _shift_only(
    loc: Located, tiles: TileSet, linear: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, float]:
    warp, ecc = align.refine_ecc(
        loc.template(),
        loc.window(tiles),
        loc.to_ecc(_with_linear(loc, linear)),
        motion=cv2.MOTION_TRANSLATION,
        iterations=50,
        eps=eps,
    )
    return loc.from_ecc(warp), ecc


def _linear(rot_deg: float, scale: float) -> np.ndarray:
    t = math.radians(rot_deg)
    return scale * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def fit_common(located: list[Located], tiles: TileSet) -> tuple[float, float]:
    """One rotation (deg) and scale for all fields: maximise their mean ECC, shifts free.

    Starts at the median of the fields' own estimates; uses at most ``COMMON_FIT_FIELDS``
    fields (those with the best own ECC).
    """
    located = sorted(located, key=lambda loc: loc.ecc, reverse=True)[:COMMON_FIT_FIELDS]
    params = np.array([align.similarity_params(loc.similarity)[2:] for loc in located])
    rot0, scale0 = (float(v) for v in np.median(params, axis=0))

    def cost(p: np.ndarray) -> float:
        lin = _linear(rot0 + p[0], scale0 * (1 + p[1] * 1e-2))
        total = 0.0
        for loc in located:
            try:
                total += _shift_only(loc, tiles, lin, eps=1e-4)[1]
            except cv2.error:
                continue
        return -total / len(located)

    res = minimize(
        cost,
        np.zeros(2),
        method="Nelder-Mead",
        options={
            "initial_simplex": [[0, 0], [0.15, 0], [0, 0.15]],
            "xatol": 2e-3,
            "fatol": 1e-8,
            "maxiter": 80,
        },
    )
    return rot0 + float(res.x[0]), scale0 * (1 + float(res.x[1]) * 1e-2)


def residual_px(a: np.ndarray, b: np.ndarray, w: int, h: int) -> float:
    """RMS distance (output pixels) between two maps over a ``w x h`` field."""
    gx, gy = np.meshgrid(np.linspace(0, w - 1, 9), np.linspace(0, h - 1, 9))
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    return float(np.sqrt(((align.apply(a, pts) - align.apply(b, pts)) ** 2).sum(axis=1).mean()))


def final_transform(
    loc: Located, tiles: TileSet, common: tuple[float, float] | None, max_residual_px: float
) -> tuple[np.ndarray, float, float] | Rejection:
    """Final hr->tile similarity, its ECC and residual; the common rotation/scale if given.

    The residual is the RMS distance (40x pixels) over the field between the field's own
    affine fit and the final similarity: large when the field does not follow the model.
    """
    h, w = loc.hr_shape
    if common is None:
        sim, ecc = loc.similarity, loc.ecc
    else:
        try:
            sim, ecc = _shift_only(loc, tiles, _linear(*common))
        except cv2.error:
            return Rejection(
                "refinement failed: no convergence with the common rotation/scale", loc.metrics
            )
        loc.metrics["common_move_px"] = round(_centre_move(sim, loc.similarity, w, h), 3)
    residual = residual_px(loc.affine, sim, w, h)
    loc.metrics.update(ecc=round(ecc, 4), residual_px=round(residual, 3))
    if residual > max_residual_px:
        return Rejection(
            f"refinement residual: {residual:.2f} px > {max_residual_px} between the field's own "
            "fit and the similarity",
            loc.metrics,
        )
    return sim, ecc, residual


def _inner_rect(
    sim: np.ndarray, w: int, h: int, tile_wh: tuple[int, int], mult: int
) -> tuple[int, int, int, int]:
    """Integer 40x pixel range ``(i0, j0, nw, nh)`` inside the mapped field and the tile."""
    corners = align.apply(
        sim, np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]])
    )
    xs, ys = np.sort(corners[:, 0]), np.sort(corners[:, 1])
    # the inscribed axis-aligned box of a nearly axis-aligned rectangle
    x0, x1, y0, y1 = xs[1], xs[2], ys[1], ys[2]
    i0 = max(0, math.ceil(x0 + 0.5) + CROP_MARGIN_PX)
    j0 = max(0, math.ceil(y0 + 0.5) + CROP_MARGIN_PX)
    i1 = min(tile_wh[0] - 1, math.floor(x1 - 0.5) - CROP_MARGIN_PX)
    j1 = min(tile_wh[1] - 1, math.floor(y1 - 0.5) - CROP_MARGIN_PX)
    nw = (i1 - i0 + 1) // mult * mult
    nh = (j1 - j0 + 1) // mult * mult
    return i0, j0, nw, nh


@dataclass
class Cut:
    """The pair images of an accepted field and where the lr crop came from."""

    lr: np.ndarray
    hr: np.ndarray
    crop_xy: tuple[int, int]
    ncc: float


def cut_pair(
    image: np.ndarray,
    sim: np.ndarray,
    tiles: TileSet,
    tile: int,
    scale: float,
    scale_mult: int,
    min_crop_px: int,
    white: float,
) -> Cut | str:
    """Crop the 40x rectangle inside the field and warp the 100x image onto it; or a reason.

    ``scale`` is the hr/lr pixel ratio; lr sizes are multiples of ``scale_mult`` so that
    ``size * scale`` is an integer.
    """
    h, w = image.shape[:2]
    th, tw = tiles.mosaic.tile_shape
    i0, j0, nw, nh = _inner_rect(sim, w, h, (tw, th), scale_mult)
    if nw < min_crop_px or nh < min_crop_px:
        return f"too small: the field covers {nw}x{nh} px of its tile (< {min_crop_px})"
    lr = tiles.images[tile][j0 : j0 + nh, i0 : i0 + nw]
    hw, hh = round(nw * scale), round(nh * scale)
    # hr pixel (u, v) centre -> tile coordinate -> 100x pixel
    out_to_tile = np.array(
        [[1 / scale, 0.0, i0 - 0.5 + 0.5 / scale], [0.0, 1 / scale, j0 - 0.5 + 0.5 / scale]]
    )
    hr = cv2.warpAffine(
        np.ascontiguousarray(image),
        align.compose(align.invert(sim), out_to_tile),
        (hw, hh),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    hr = np.clip(hr.reshape(hh, hw, -1), 0, white)
    hr_small = cv2.resize(to_gray(hr), (nw, nh), interpolation=cv2.INTER_AREA)
    return Cut(lr, hr, (i0, j0), align.ncc(hr_small, to_gray(lr)))
