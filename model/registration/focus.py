"""Focus measures, best-focus selection and wavelet extended depth of field (EDOF).

The EDOF fusion follows the wavelet approach of Forster et al. (2004): every slice is
decomposed with a 2-D wavelet transform, each detail coefficient is taken from the slice where
it is largest in magnitude (the sharpest slice at that scale and place), the choice is made
once per position and level for all three orientations (subband consistency), and the choice
map is median filtered (spatial consistency) so that noise does not pick isolated
coefficients from defocused slices. Colour follows the finest-scale choice.
"""

from __future__ import annotations

import cv2
import numpy as np
import pywt
from scipy import ndimage

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Grayscale float32 ``(y, x)`` of a ``(y, x)`` or ``(y, x, c)`` image (luma for RGB)."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        return img
    if img.shape[-1] == 1:
        return img[..., 0]
    if img.shape[-1] == 3:
        return np.asarray(img @ _LUMA, dtype=np.float32)
    return np.asarray(img.mean(axis=-1), dtype=np.float32)


def normalized_variance(image: np.ndarray) -> float:
    """Variance divided by the mean intensity: a brightness-independent focus measure."""
    gray = to_gray(image)
    mean = float(gray.mean())
    return float(gray.var()) / mean if mean > 0 else 0.0


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
    stack: np.ndarray, wavelet: str = "db2", levels: int = 4, consistency: int = 3
) -> np.ndarray:
    """Fuse a ``(z, y, x, c)`` focus stack into one all-in-focus ``(y, x, c)`` float32 image.

    The fusion runs on the luminance; colour (each channel minus the luminance) is taken per
    pixel from the slice chosen at the finest scale, so an RGB stack costs one wavelet
    decomposition per slice, not three.

    Parameters
    ----------
    stack
        Focus stack, slices along axis 0.
    wavelet
        PyWavelets wavelet name.
    levels
        Decomposition levels (reduced automatically for small images).
    consistency
        Size of the median filter applied to each level's slice-choice map (1: none).
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
    fused: list[object] = [np.mean([d[0] for d in decs], axis=0)]  # keeps the intensity
    choice = np.zeros((1, 1), dtype=np.intp)
    for level in range(1, lev + 1):
        # detail magnitude summed over the orientations: one choice per place and scale
        activity = np.stack([sum(np.abs(band) for band in d[level]) for d in decs])
        choice = np.argmax(activity, axis=0)
        if consistency > 1:
            choice = ndimage.median_filter(choice, size=consistency, mode="nearest")
        fused.append(
            tuple(
                np.take_along_axis(np.stack([d[level][o] for d in decs]), choice[None], axis=0)[0]
                for o in range(3)
            )
        )
    y = pywt.waverec2(fused, wavelet)[:ny, :nx].astype(np.float32)
    if nc == 1:
        return y[..., None]
    pick = cv2.resize(choice.astype(np.uint8), (nx, ny), interpolation=cv2.INTER_NEAREST)
    chroma = zstack - luma[..., None]
    return y[..., None] + np.take_along_axis(chroma, pick[None, ..., None].astype(np.intp), 0)[0]
