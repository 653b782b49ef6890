"""Classical baselines the network must beat: bicubic + Gaussian, Richardson-Lucy and Wiener.

All three start from the bicubic upsample on the 100x grid. The deconvolutions (scikit-image
``restoration.richardson_lucy`` and ``restoration.wiener``) use the in-focus point-spread function
of the low-NA objective: bright-field with a condenser is treated as incoherent imaging through a
pupil of NA ``(NA_objective + min(NA_condenser, NA_objective)) / 2`` (the partially coherent
cut-off ``(NA_obj + NA_cond) / wavelength``), whose intensity PSF is the Airy pattern
``(2 J1(v) / v)^2`` with ``v = 2 pi NA r / wavelength``; it is integrated over one low-resolution
camera pixel and sampled on the 100x grid, one PSF per colour channel. The Gaussian width, the
Richardson-Lucy iteration count and the Wiener balance are each chosen on the validation fields
(highest mean SSIM against the reference), never on the test fields. Before any of them, the
bicubic image gets a per-channel ``gain * x + offset`` fitted on the validation fields: the
intensity difference between objectives that the network learns too (plain bicubic keeps none).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy import ndimage
from scipy.special import j1
from skimage import restoration

from deepscope.errors import InputError
from deepscope.formats.pairs import PairSet
from model.training.intensity import LinearMap, apply_linear, fit_linear
from model.training.metrics import ssim_psnr

#: The classical methods, in table order (bicubic itself is :mod:`model.training.infer`).
CLASSICAL = ("bicubic", "gaussian", "richardson_lucy", "wiener")
#: Search grids: Gaussian sigma (100x pixels), RL iterations, Wiener balance.
SIGMAS_PX = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
RL_ITERATIONS = (1, 2, 4, 8, 16, 32)
WIENER_BALANCES = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
#: Camera wavelengths (um) of RGB channels; mono images use the green one.
RGB_WAVELENGTHS_UM = (0.65, 0.55, 0.45)


class Optics(BaseModel):
    """Optics of the low-resolution (input) objective, for the deconvolution PSF."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    objective_na: float = Field(0.95, gt=0, le=1.6, description="NA of the input objective")
    condenser_na: float = Field(0.55, ge=0, le=1.6, description="NA of the condenser")
    wavelengths_um: tuple[float, ...] = Field(
        RGB_WAVELENGTHS_UM, description="one per channel (RGB order), or one for mono"
    )

    @property
    def effective_na(self) -> float:
        """Pupil NA of the incoherent approximation of bright-field imaging."""
        return (self.objective_na + min(self.condenser_na, self.objective_na)) / 2

    def channel_wavelengths(self, channels: int) -> tuple[float, ...]:
        """Wavelength of each of *channels* channels (mono: the middle one)."""
        wl = self.wavelengths_um
        if len(wl) == channels:
            return wl
        if channels == 1:
            return (wl[len(wl) // 2],)
        raise InputError(f"optics give {len(wl)} wavelength(s) for {channels}-channel images")


def optics_for_pairs(pairset: PairSet) -> Optics:
    """Optics of the pairs' input objective: its NA from the source dataset's ``dataset.json``.

    Falls back to the defaults (40x/0.95, condenser 0.55) when the pairs do not come from a
    deepscope dataset that records it.
    """
    info = Path(pairset.source) / "dataset.json" if pairset.source else None
    wavelengths = RGB_WAVELENGTHS_UM if pairset.channels == 3 else (RGB_WAVELENGTHS_UM[1],)
    if info is None or not info.is_file():
        return Optics(wavelengths_um=wavelengths)
    try:
        na = json.loads(info.read_text(encoding="utf-8"))["tile_objective"]["na"]
        return Optics(objective_na=float(na), wavelengths_um=wavelengths)
    except (OSError, ValueError, KeyError, TypeError, ValidationError):
        return Optics(wavelengths_um=wavelengths)


def _box_weights(width: float) -> np.ndarray:
    """1-D kernel of a box *width* samples wide (fractional ends), centred on a sample."""
    half = math.ceil(width / 2)
    x = np.arange(-half, half + 1, dtype=np.float64)
    w = np.clip(np.minimum(x + 0.5, width / 2) - np.maximum(x - 0.5, -width / 2), 0.0, 1.0)
    return w / w.sum()


def psf_on_grid(
    optics: Optics, wavelength_um: float, pitch_um: float, pixel_um: float, oversample: int = 5
) -> np.ndarray:
    """In-focus PSF of the input objective on an output grid of *pitch_um* (odd, sums to 1).

    The Airy pattern of the effective NA is integrated over a square camera pixel of *pixel_um*
    (the input's pixel size at the specimen) on a grid *oversample* times finer, then averaged
    over output pixels. The support reaches ``2 wavelength / NA`` (about 97 % of the energy).
    """
    na = optics.effective_na
    half = math.ceil(2.0 * wavelength_um / na / pitch_um)
    n = (2 * half + 1) * oversample
    fine = pitch_um / oversample
    r = (np.arange(n) - (n - 1) / 2) * fine
    v = 2 * np.pi * na * np.hypot(r[None, :], r[:, None]) / wavelength_um
    with np.errstate(invalid="ignore", divide="ignore"):
        airy = np.where(v > 0, (2 * j1(v) / v) ** 2, 1.0)
    box = _box_weights(pixel_um / fine)
    airy = ndimage.convolve1d(airy, box, axis=0, mode="constant")
    airy = ndimage.convolve1d(airy, box, axis=1, mode="constant")
    psf = airy.reshape(2 * half + 1, oversample, 2 * half + 1, oversample).mean(axis=(1, 3))
    return psf / psf.sum()


def _per_channel(
    image: np.ndarray, pad: int, op: Callable[[np.ndarray, int], np.ndarray]
) -> np.ndarray:
    """Apply ``op(channel, index)`` to reflect-padded channels of a ``(y, x, c)`` image."""
    out = np.empty(image.shape, np.float32)
    for c in range(image.shape[2]):
        padded = np.pad(image[..., c].astype(np.float64), pad, mode="reflect")
        out[..., c] = op(padded, c)[pad:-pad, pad:-pad]
    return out


def gaussian(bicubic: np.ndarray, sigma_px: float) -> np.ndarray:
    """Bicubic image blurred by a Gaussian of *sigma_px* output pixels (per channel)."""
    return ndimage.gaussian_filter(
        bicubic.astype(np.float32), (sigma_px, sigma_px, 0), mode="reflect"
    )


def richardson_lucy(
    bicubic: np.ndarray, psfs: Sequence[np.ndarray], iterations: int, max_value: float
) -> np.ndarray:
    """Richardson-Lucy deconvolution (scikit-image) of a raw ``(y, x, c)`` bicubic image."""
    pad = max(p.shape[0] for p in psfs) // 2 + 1
    scaled = np.clip(bicubic / max_value, 1e-6, None)
    out = _per_channel(
        scaled,
        pad,
        lambda ch, c: restoration.richardson_lucy(ch, psfs[c], num_iter=iterations, clip=False),
    )
    return out * np.float32(max_value)


def wiener(
    bicubic: np.ndarray, psfs: Sequence[np.ndarray], balance: float, max_value: float
) -> np.ndarray:
    """Wiener deconvolution (scikit-image, Laplacian regulariser) of a raw bicubic image."""
    pad = max(p.shape[0] for p in psfs) // 2 + 1
    out = _per_channel(
        bicubic / max_value,
        pad,
        lambda ch, c: restoration.wiener(ch, psfs[c], balance, clip=False),
    )
    return out * np.float32(max_value)


@dataclass(frozen=True)
class Baselines:
    """The classical baselines with their settings chosen on the validation fields."""

    optics: Optics
    psfs: tuple[np.ndarray, ...]
    max_value: float
    #: per-channel intensity map applied to the bicubic image before each tuned method
    intensity: LinearMap
    gaussian_sigma_px: float
    rl_iterations: int
    wiener_balance: float
    #: method -> [(setting, mean validation SSIM)], the search behind each choice
    search: dict[str, list[tuple[float, float]]]

    def apply(self, bicubic: np.ndarray) -> dict[str, np.ndarray]:
        """Every classical method's image from a raw bicubic upsample (table order)."""
        matched = apply_linear(bicubic, self.intensity)
        return {
            "bicubic": bicubic,
            "gaussian": gaussian(matched, self.gaussian_sigma_px),
            "richardson_lucy": richardson_lucy(
                matched, self.psfs, self.rl_iterations, self.max_value
            ),
            "wiener": wiener(matched, self.psfs, self.wiener_balance, self.max_value),
        }

    def settings(self) -> dict[str, object]:
        """JSON-friendly settings, PSF description and the validation search."""
        return {
            "intensity_gain_offset": self.intensity,
            "gaussian_sigma_px": self.gaussian_sigma_px,
            "richardson_lucy_iterations": self.rl_iterations,
            "wiener_balance": self.wiener_balance,
            "optics": self.optics.model_dump(mode="json"),
            "effective_na": self.optics.effective_na,
            "psf_size_px": [int(p.shape[0]) for p in self.psfs],
            "chosen_on": "validation fields, highest mean SSIM against the reference",
            "at_grid_edge": [
                k
                for k, pts in self.search.items()
                if max(pts, key=lambda p: p[1]) in (pts[0], pts[-1])
            ],
            "validation_search": {
                k: [{"setting": s, "val_ssim": round(v, 5)} for s, v in pts]
                for k, pts in self.search.items()
            },
        }


def _search(
    values: Sequence[float],
    fields: Sequence[tuple[np.ndarray, np.ndarray]],
    make: Callable[[np.ndarray, float], np.ndarray],
    max_value: float,
) -> tuple[float, list[tuple[float, float]]]:
    """The value of *values* with the highest mean SSIM of ``make(bicubic, value)``."""
    curve = []
    for v in values:
        ssim = [ssim_psnr(make(bic, v), hr, max_value)[0] for bic, hr in fields]
        curve.append((float(v), float(np.mean(ssim))))
    best = max(curve, key=lambda p: p[1])[0]
    return best, curve


def tune_baselines(
    fields: Sequence[tuple[np.ndarray, np.ndarray]],
    optics: Optics,
    *,
    pitch_um: float,
    pixel_um: float,
    max_value: float,
) -> Baselines:
    """Fit the intensity map and choose each setting on validation ``(bicubic, reference)`` pairs.

    *pitch_um* is the output (100x) pixel size, *pixel_um* the input (40x) one.
    """
    if not fields:
        raise InputError("no validation fields to tune the classical baselines on")
    channels = fields[0][0].shape[2]
    intensity = fit_linear(fields)
    fields = [(apply_linear(bic, intensity), ref) for bic, ref in fields]
    psfs = tuple(
        psf_on_grid(optics, wl, pitch_um, pixel_um) for wl in optics.channel_wavelengths(channels)
    )
    sigma, s_curve = _search(SIGMAS_PX, fields, gaussian, max_value)
    iters, r_curve = _search(
        RL_ITERATIONS,
        fields,
        lambda b, v: richardson_lucy(b, psfs, int(v), max_value),
        max_value,
    )
    balance, w_curve = _search(
        WIENER_BALANCES, fields, lambda b, v: wiener(b, psfs, v, max_value), max_value
    )
    return Baselines(
        optics=optics,
        psfs=psfs,
        max_value=max_value,
        intensity=intensity,
        gaussian_sigma_px=sigma,
        rl_iterations=int(iters),
        wiener_balance=balance,
        search={"gaussian": s_curve, "richardson_lucy": r_curve, "wiener": w_curve},
    )
