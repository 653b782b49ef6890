"""Flat-field correction from blank-field frames of one objective.

The acquisition plan's ``flat_field`` option takes, per objective, two averaged frames of bare
glass: one at the objective's exposure (``flat_<objective>``) and one at half of it
(``flat_<objective>_half``). Their difference gives the camera's dark level without closing a
shutter (``dark = 2 * half - full``, per channel); the full frame minus the dark level,
smoothed, is the illumination profile (vignetting, uneven illumination, objective
transmission across the field). A frame is corrected as
``dark + (raw - dark) / profile`` with the profile's mean at 1, so intensities keep their
scale and glass images flat.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from deepscope.errors import InputError

#: Smoothing of the illumination profile (pixels): removes the blank frame's noise and dust.
PROFILE_SIGMA_PX = 8.0


@dataclass(frozen=True)
class FlatField:
    """Illumination profile ``(y, x, c)`` (mean 1) and dark level ``(c,)`` of one objective."""

    profile: np.ndarray
    dark: np.ndarray

    @classmethod
    def from_frames(cls, full: np.ndarray, half: np.ndarray) -> FlatField:
        """Build from blank frames at the full and at half the exposure, ``(y, x[, c])``."""
        f = np.atleast_3d(np.asarray(full, np.float32))
        h = np.atleast_3d(np.asarray(half, np.float32))
        if f.shape != h.shape:
            raise InputError(f"flat-field frames differ in shape: {f.shape} and {h.shape}")
        dark = (2 * h - f).reshape(-1, f.shape[-1]).mean(axis=0)
        signal = f - dark
        if np.any(signal.reshape(-1, f.shape[-1]).mean(axis=0) <= 0):
            raise InputError("flat-field frame is not brighter than its half-exposure frame")
        smooth = cv2.GaussianBlur(signal, (0, 0), PROFILE_SIGMA_PX, borderType=cv2.BORDER_REFLECT)
        smooth = np.atleast_3d(smooth)
        profile = smooth / smooth.reshape(-1, f.shape[-1]).mean(axis=0)
        return cls(np.maximum(profile, 1e-3).astype(np.float32), dark.astype(np.float32))

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Corrected float32 copy of a ``(y, x, c)`` frame or ``(z, y, x, c)`` stack."""
        img = np.asarray(image, np.float32)
        if img.shape[-3:] != self.profile.shape:
            raise InputError(
                f"image of shape {img.shape} does not match the flat field "
                f"{self.profile.shape} (acquire the flat field with the same camera ROI)"
            )
        return np.asarray(self.dark + (img - self.dark) / self.profile, np.float32)

    def falloff(self) -> float:
        """Largest relative drop of the profile below its maximum (0 = perfectly even)."""
        return float(1.0 - self.profile.min() / self.profile.max())
