"""Focus measures, best-focus selection and wavelet extended depth of field (EDOF).

The EDOF fusion follows the wavelet approach of Forster et al. (2004): every slice is
decomposed with an orthonormal 2-D wavelet transform and each detail coefficient is taken from
the slices where the image is sharp at that scale and place. Picking, per coefficient, the
slice with the largest magnitude (the textbook rule) picks noise: of five noisy coefficients the
largest is mostly noise, so the fused image came out noisier than any slice. Here the choice is
made on the local detail energy (summed over the three orientations, smoothed over a few
coefficients): every slice whose energy is within the estimation noise of the sharpest one's
(from the noise sigma of the finest diagonal band) is averaged, the others are left out. A
detail present in one slice comes from that slice; where several are equally sharp, or none
holds detail above the noise (flat cytoplasm, glass), they are averaged and the noise drops by
up to sqrt(slices). Colour follows the finest-scale weights.

Which target to train on (``deepscope register`` default ``edof``, ``--no-edof`` for the best
slice):

* **best slice** is one real exposure: its noise is the camera's, its blur the 100x depth of
  field (~0.4 um in oil), so structures above and below that plane are soft. A network trained
  on it learns to put the 40x image's depth of field (~1 um) into one thin plane, and cannot
  know which parts of the 40x image to defocus: it learns an average.
* **edof** holds every structure of the z-range sharp, as the 40x (with its deeper field) sees
  them, and, with this fusion, less noise than one slice. It is the better-posed target for a
  40x -> 100x network; its cost is that it is not one physical image (rare fusion seams where
  slices disagree).
"""

from __future__ import annotations

import cv2
import numpy as np
import pywt
from scipy import ndimage

from deepscope.imaging import normalized_variance
from deepscope.imaging import to_gray as to_gray  # re-exported for the registration modules


def sharpness(image: np.ndarray) -> float:
    """Contrast- and shading-independent sharpness: fine-band over coarse-band energy.

    The ratio of the std of two difference-of-Gaussian bands (sigma 1-2 and 2-4 pixels):
    defocus removes the fine band first; smooth shading and the overall contrast cancel.
    Comparable between two images of the same area on the same pixel grid (e.g. a 40x crop
    and the 100x field downsampled to it): the blurrier image has the lower value.
    """
    gray = to_gray(image)
    g1, g2, g4 = (cv2.GaussianBlur(gray, (0, 0), s) for s in (1.0, 2.0, 4.0))
    coarse = float((g2 - g4).std())
    return float((g1 - g2).std()) / coarse if coarse > 0 else 0.0


def texture(image: np.ndarray, sigma: float) -> float:
    """Relative texture: std of the image divided by its local mean (Gaussian of *sigma*).

    Shading (vignetting) cancels, so bare glass scores near its noise level.
    """
    gray = to_gray(image)
    local = cv2.GaussianBlur(gray, (0, 0), sigma)
    return float((gray / np.maximum(local, 1e-6)).std())


def best_focus_index(stack: np.ndarray) -> int:
    """Index of the sharpest slice of a ``(z, y, x[, c])`` stack (normalized variance)."""
    scores = [normalized_variance(s) for s in stack]
    return int(np.argmax(scores))


def edof_wavelet(
    stack: np.ndarray,
    wavelet: str = "db2",
    levels: int = 4,
    smoothing: float = 0.7,
    spread: float = 2.0,
) -> np.ndarray:
    """Fuse a ``(z, y, x, c)`` focus stack into one all-in-focus ``(y, x, c)`` float32 image.

    The fusion runs on the luminance; colour (each channel minus the luminance) is blended per
    pixel with the finest-scale weights, so an RGB stack costs one wavelet decomposition per
    slice, not three.

    Parameters
    ----------
    stack
        Focus stack, slices along axis 0.
    wavelet
        PyWavelets wavelet name (orthonormal, so that noise is the same in every band).
    levels
        Decomposition levels (reduced automatically for small images).
    smoothing
        Gaussian sigma (coefficients) of the local detail energy that chooses the slices.
    spread
        Slices within ``spread`` standard errors of the sharpest one's energy are averaged.
    """
    zstack = np.asarray(stack, dtype=np.float32)
    if zstack.ndim == 3:
        zstack = zstack[..., None]
    nz, ny, nx, nc = zstack.shape
    if nz == 1:
        return zstack[0].copy()
    luma = np.stack([to_gray(s) for s in zstack])
    max_level = pywt.dwt_max_level(min(ny, nx), pywt.Wavelet(wavelet).dec_len)
    lev = max(1, min(levels, max_level))
    # per slice: [cA, (cH, cV, cD) per level, coarse to fine]
    decs = [pywt.wavedec2(y, wavelet, level=lev) for y in luma]
    # noise sigma from the finest diagonal band (robust: median absolute value / 0.6745)
    sigma = float(np.median([np.median(np.abs(d[-1][2])) for d in decs])) / 0.6745
    fused: list[object] = [np.mean([d[0] for d in decs], axis=0)]  # keeps the intensity
    weights = np.full((nz, 1, 1), 1.0 / nz, np.float32)
    for level in range(1, lev + 1):
        bands = np.stack([np.stack(d[level]) for d in decs])  # (z, 3, h, w)
        energy = np.stack(
            [ndimage.gaussian_filter((b * b).sum(axis=0), smoothing, mode="nearest") for b in bands]
        )
        # slices whose detail energy is within its estimation noise of the best are averaged
        best = energy.max(axis=0)
        n_eff = 4 * np.pi * smoothing**2  # coefficients in the smoothing window
        tol = spread * (2 * sigma * np.sqrt(best) + 3 * sigma**2) / np.sqrt(n_eff)
        keep = (energy >= best - tol).astype(np.float32)
        weights = keep / keep.sum(axis=0)
        fused.append(tuple((weights * bands[:, o]).sum(axis=0) for o in range(3)))
    y = pywt.waverec2(fused, wavelet)[:ny, :nx].astype(np.float32)
    if nc == 1:
        return y[..., None]
    w = np.stack([cv2.resize(wz.astype(np.float32), (nx, ny)) for wz in weights])
    w = w / w.sum(axis=0, keepdims=True)
    chroma = zstack - luma[..., None]
    return y[..., None] + (w[..., None] * chroma).sum(axis=0)
