"""Locating a 100x field in the 40x image and refining it to a sub-pixel similarity transform.

Transforms are 2x3 affine matrices acting on ``(x, y) = (column, row)`` pixel coordinates
with pixel centres at integers (the OpenCV convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Match:
    """Best template position (top-left ``x``, ``y`` in image pixels) and its NCC."""

    x: int
    y: int
    ncc: float
    at_edge: bool


def homogeneous(m: np.ndarray) -> np.ndarray:
    """3x3 form of a 2x3 affine matrix."""
    out = np.eye(3)
    out[:2] = m
    return out


def compose(*ms: np.ndarray) -> np.ndarray:
    """``compose(a, b)`` applies *b* first, then *a*; 2x3 in, 2x3 out."""
    out = np.eye(3)
    for m in ms:
        out = out @ homogeneous(m)
    return out[:2].copy()


def invert(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    return np.asarray(cv2.invertAffineTransform(np.asarray(m, dtype=np.float64)))


def apply(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Map ``(n, 2)`` points through a 2x3 affine matrix."""
    pts = np.asarray(xy, dtype=np.float64)
    return np.asarray(pts @ m[:, :2].T + m[:, 2])


def scaling(fx: float, fy: float) -> np.ndarray:
    """Pixel-centre-correct map from an image to its resize by ``(fx, fy)``."""
    return np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5]])


def translation(tx: float, ty: float) -> np.ndarray:
    """Pure translation."""
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty]])


def similarity_params(m: np.ndarray) -> tuple[float, float, float, float]:
    """``(tx, ty, rotation_deg, scale)`` of a similarity matrix."""
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    rot = float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))
    return float(m[0, 2]), float(m[1, 2]), rot, scale


def nearest_similarity(m: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float]:
    """Least-squares similarity closest to affine *m* over a ``width x height`` field.

    Returns the similarity and the RMS distance (output pixels) between the two maps over
    the field: a measure of how far from a similarity the measured deformation is.
    """
    gx, gy = np.meshgrid(np.linspace(0, width - 1, 9), np.linspace(0, height - 1, 9))
    src = np.column_stack([gx.ravel(), gy.ravel()])
    dst = apply(m, src)
    sc, dc = src.mean(axis=0), dst.mean(axis=0)
    s0, d0 = src - sc, dst - dc
    # closed-form 2-D Procrustes with scale: dst ~ [[a, -b], [b, a]] src + t
    denom = float((s0**2).sum())
    a = float((s0[:, 0] * d0[:, 0] + s0[:, 1] * d0[:, 1]).sum()) / denom
    b = float((s0[:, 0] * d0[:, 1] - s0[:, 1] * d0[:, 0]).sum()) / denom
    lin = np.array([[a, -b], [b, a]])
    sim = np.column_stack([lin, dc - lin @ sc])
    resid = float(np.sqrt(((apply(sim, src) - dst) ** 2).sum(axis=1).mean()))
    return sim, resid


def locate(image: np.ndarray, template: np.ndarray, x0: float, y0: float, radius: int) -> Match:
    """Find *template* in *image* near top-left ``(x0, y0)``, within ``radius`` pixels.

    Normalized cross-correlation (``TM_CCOEFF_NORMED``) over the window; ``at_edge`` says the
    best position lies on the window's border, i.e. the field is probably outside it.
    Raises ValueError when the window does not hold the template.
    """
    th, tw = template.shape
    ih, iw = image.shape
    wx0, wy0 = max(0, round(x0) - radius), max(0, round(y0) - radius)
    wx1, wy1 = min(iw, round(x0) + radius + tw), min(ih, round(y0) + radius + th)
    if wx1 - wx0 < tw or wy1 - wy0 < th:
        raise ValueError("search window does not hold the field")
    win = np.ascontiguousarray(image[wy0:wy1, wx0:wx1], dtype=np.float32)
    res = cv2.matchTemplate(
        win, np.ascontiguousarray(template, dtype=np.float32), cv2.TM_CCOEFF_NORMED
    )
    _, ncc, _, (px, py) = cv2.minMaxLoc(res)
    ry, rx = res.shape
    at_edge = (rx > 1 and px in (0, rx - 1)) or (ry > 1 and py in (0, ry - 1))
    return Match(wx0 + px, wy0 + py, float(ncc), bool(at_edge))


def refine_ecc(
    template: np.ndarray,
    image: np.ndarray,
    init: np.ndarray,
    *,
    motion: int = cv2.MOTION_AFFINE,
    sigma: float = 1.0,
    iterations: int = 200,
    eps: float = 1e-6,
) -> tuple[np.ndarray, float]:
    """Map ``template -> image`` maximising the enhanced correlation coefficient (ECC).

    *motion* is an OpenCV motion type: ``MOTION_AFFINE`` fits all six parameters,
    ``MOTION_TRANSLATION`` only the shift and keeps the linear part of *init*.
    Both images are smoothed with a Gaussian of *sigma* pixels first, and the template's
    border (where smoothing sees the edge) is left out: ECC's own smoothing includes that
    border and biases the scale by ~0.1 %. Returns the 2x3 matrix and the final correlation;
    raises ``cv2.error`` when ECC does not converge.
    """
    m = max(1, int(np.ceil(3 * sigma)))
    tpl = cv2.GaussianBlur(np.asarray(template, dtype=np.float32), (0, 0), sigma)[m:-m, m:-m]
    img = cv2.GaussianBlur(np.asarray(image, dtype=np.float32), (0, 0), sigma)
    warp = np.asarray(compose(init, translation(m, m)), dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, eps)
    cc, found = cv2.findTransformECC(
        np.ascontiguousarray(tpl),
        np.ascontiguousarray(img),
        warp,
        motion,
        criteria,
        np.empty((0, 0), np.uint8),  # no mask
        1,
    )
    return compose(np.asarray(found, dtype=np.float64), translation(-m, -m)), float(cc)


def flatten(image: np.ndarray, sigma: float) -> np.ndarray:
    """Divide by the local mean (Gaussian of *sigma* pixels): removes shading and vignetting.

    Bright-field images of one area through two objectives differ in illumination fall-off;
    left in, the smooth difference pulls the ECC optimum away from the true alignment.
    """
    img = np.asarray(image, dtype=np.float32)
    local = cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return np.asarray(img / np.maximum(local, 1e-6), dtype=np.float32)


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalized cross-correlation of two equal-shape images (Pearson's r)."""
    av = np.asarray(a, dtype=np.float64).ravel()
    bv = np.asarray(b, dtype=np.float64).ravel()
    av = av - av.mean()
    bv = bv - bv.mean()
    denom = float(np.sqrt((av @ av) * (bv @ bv)))
    return float(av @ bv) / denom if denom > 0 else 0.0
