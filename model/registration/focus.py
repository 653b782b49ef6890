"""Focus measures, best-focus selection and wavelet extended depth of field (EDOF).

The EDOF fusion follows the wavelet approach of Forster et al. (2004): every slice is
decomposed with a 2-D wavelet transform and each detail coefficient is taken from the slices
where the image is sharp at that scale and place. Picking, per coefficient, the slice with the
largest magnitude (the textbook rule) picks noise: of five noisy coefficients the largest is
mostly noise, so the fused image came out noisier than any slice. Here the slices are weighed
by their local detail energy (summed over the three orientations, smoothed over a few
coefficients): a slice whose energy is within the estimation noise of the sharpest one's (from
the noise sigma of the finest diagonal band) weighs about as much as it, one far below weighs
nothing. A detail present in one slice comes from that slice; where several are equally sharp,
or none holds detail above the noise (flat cytoplasm, glass), they are averaged and the noise
drops by up to sqrt(slices). Colour follows the finest-scale weights.

Two choices keep the fusion free of seams and streaks: the transform is the stationary
(undecimated) one, so a change of slice between neighbouring coefficients does not leave the
blocky, grid-aligned steps of a decimated transform's basis functions (the streaks that the
previous, decimated fusion put into the 100x targets); and the weights are soft and smoothed
over one coefficient of their level, never a hard per-coefficient choice.

Which target to train on (``deepscope register`` default ``edof``, ``--no-edof`` for the best
slice):

* **best slice** is one real exposure: its noise is the camera's, its blur the 100x depth of
  field (~0.4 um in oil), so structures above and below that plane are soft. A network trained
  on it learns to put the 40x image's depth of field (~1 um) into one thin plane, and cannot
  know which parts of the 40x image to defocus: it learns an average.
* **edof** holds every structure of the z-range sharp, as the 40x (with its deeper field) sees
  them, and, with this fusion, less noise than one slice. It is the better-posed target for a
  40x -> 100x network; its cost is that it is not one physical image (where structures at
  different depths overlap, it holds the sharper one best).
"""

from __future__ import annotations

import cv2
import numpy as np
import pywt

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


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (sigma in pixels), edges replicated."""
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)


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
        Gaussian sigma of the local detail energy that weighs the slices, in pixels at the
        finest level (doubled at each coarser level).
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
    # the stationary transform wants sides divisible by 2**lev: mirror-pad, crop at the end
    pad = ((0, 0), (0, -ny % 2**lev), (0, -nx % 2**lev))
    padded = np.pad(luma, pad, mode="symmetric")
    # per slice: [cA, (cH, cV, cD) per level, coarse to fine], every band full size
    decs = [pywt.swt2(y, wavelet, level=lev, trim_approx=True, norm=True) for y in padded]
    # noise sigma of the finest diagonal band (robust: median absolute value / 0.6745); the
    # normalised stationary transform halves the noise at each coarser level
    sigma = float(np.median([np.median(np.abs(d[-1][2])) for d in decs])) / 0.6745
    fused: list[object] = [np.mean([d[0] for d in decs], axis=0)]  # keeps the intensity
    weights = np.full((nz, 1, 1), 1.0 / nz, np.float32)
    for level in range(1, lev + 1):
        scale = 2.0 ** (lev - level)  # 1 at the finest level, doubling with each coarser one
        bands = np.stack([np.stack(d[level]) for d in decs])  # (z, 3, h, w)
        energy = np.stack([_blur((b * b).sum(axis=0), smoothing * scale) for b in bands])
        best = energy.max(axis=0)
        n_eff = 4 * np.pi * (smoothing * scale) ** 2  # coefficients in the smoothing window
        noise = sigma / scale
        tol = spread * (2 * noise * np.sqrt(best) + 3 * noise**2) / np.sqrt(n_eff)
        # soft: weight 1 for the sharpest slice, falling off over the estimation noise
        gap = (best - energy) / np.maximum(tol, np.finfo(np.float32).tiny)
        soft = np.exp(-0.5 * gap * gap)
        # smoothed over one coefficient of the level, so that no choice makes a seam
        smooth = np.stack([_blur(w, scale) for w in soft])
        weights = smooth / smooth.sum(axis=0)
        fused.append(tuple((weights * bands[:, o]).sum(axis=0) for o in range(3)))
    y = pywt.iswt2(fused, wavelet, norm=True)[:ny, :nx].astype(np.float32)
    if nc == 1:
        return y[..., None]
    w = weights[:, :ny, :nx]
    chroma = zstack - luma[..., None]
    return y[..., None] + (w[..., None] * chroma).sum(axis=0)
