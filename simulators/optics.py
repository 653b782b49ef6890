"""Objective specifications and the point-spread functions of the simulated bright-field optics.

Bright-field with a condenser of NA 0.55 is partially coherent; it is approximated here as
incoherent imaging through a pupil of radius ``(NA_objective + NA_condenser) / 2``, which gives
the partially coherent transfer-function cut-off ``(NA_objective + NA_condenser) / wavelength``.
Defocus enters as the exact phase ``2*pi*dz*(sqrt((n/lambda)^2 - f^2) - n/lambda)`` of the
immersion medium, so the depth of field shrinks with NA as it does in a real microscope.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from pydantic import Field

from deepscope.objective import Objective

#: Wavelengths (um) of the red, green and blue channels of the RGB camera.
WAVELENGTHS_UM: tuple[float, float, float] = (0.65, 0.55, 0.45)
#: Numerical aperture of the bright-field condenser.
CONDENSER_NA = 0.55


class ObjectiveSpec(Objective):
    """An objective of the simulated turret: its name, and the optics the renderer needs."""

    name: str
    refractive_index: float = Field(ge=1.0, description="index of the immersion medium")
    transmission_rgb: tuple[float, float, float] = Field(
        default=(1.0, 1.0, 1.0), description="light throughput per camera channel, relative"
    )
    illumination_falloff: float = Field(
        default=0.0, ge=0, lt=1, description="extra relative fall-off at the sensor corner"
    )


#: The turret: the paper's 40x/0.95 air and 100x/1.4 oil objectives. As on a real stand, the
#: oil objective passes a little less light, more so in blue (its images are ~40-70 counts
#: darker per channel), and illuminates its smaller field less evenly.
OBJECTIVES: dict[str, ObjectiveSpec] = {
    "40x": ObjectiveSpec(
        name="40x",
        magnification=40,
        na=0.95,
        immersion="air",
        refractive_index=1.0,
        illumination_falloff=0.05,
    ),
    "100x": ObjectiveSpec(
        name="100x",
        magnification=100,
        na=1.4,
        immersion="oil",
        refractive_index=1.518,
        transmission_rgb=(0.985, 0.978, 0.97),
        illumination_falloff=0.12,
    ),
}


def psf_kernel(
    spec: ObjectiveSpec, wavelength_um: float, pitch_um: float, dz_um: float
) -> np.ndarray:
    """Intensity PSF sampled on camera pixels of *pitch_um* at defocus *dz_um* (sums to 1).

    Cached on the arguments rounded to 0.01 um defocus and 0.1 nm pitch.
    """
    return _psf_kernel(spec.name, round(wavelength_um, 4), round(pitch_um, 4), round(dz_um, 2))


@lru_cache(maxsize=512)
def _psf_kernel(name: str, wavelength_um: float, pitch_um: float, dz_um: float) -> np.ndarray:
    spec = OBJECTIVES[name]
    oversample = 3  # odd, so the PSF centre falls on the centre of a camera pixel
    n_grid = 255
    fine = pitch_um / oversample
    f = np.fft.fftfreq(n_grid, d=fine)
    fx, fy = np.meshgrid(f, f)
    f2 = fx**2 + fy**2
    na_eff = (spec.na + min(CONDENSER_NA, spec.na)) / 2
    n_over_l = spec.refractive_index / wavelength_um
    pupil_r = na_eff / wavelength_um
    inside = f2 <= pupil_r**2
    kz = np.sqrt(np.clip(n_over_l**2 - f2, 0.0, None))
    pupil = inside * np.exp(1j * 2 * np.pi * dz_um * (kz - n_over_l))
    amp = np.fft.fftshift(np.fft.ifft2(pupil))
    inten = np.abs(amp) ** 2
    # integrate over camera pixels (pixel aperture), then keep a support holding the energy
    coarse = inten.reshape(n_grid // oversample, oversample, n_grid // oversample, oversample)
    coarse = coarse.sum(axis=(1, 3))
    c = coarse.shape[0] // 2
    geometric_um = abs(dz_um) * na_eff / np.sqrt(max(spec.refractive_index**2 - na_eff**2, 1e-6))
    half = int(
        np.clip(np.ceil((1.5 * geometric_um + 2.0 * wavelength_um / na_eff) / pitch_um), 3, c - 1)
    )
    kernel = coarse[c - half : c + half + 1, c - half : c + half + 1]
    return (kernel / kernel.sum()).astype(np.float32)
