"""Per-channel linear intensity match of a registered 100x target to its 40x crop.

The two objectives pass different amounts of light per colour (transmission, illumination,
lamp drift between the passes), so a 100x field is darker or bluer than the 40x crop of the
same place by a gain and an offset per channel. A network trained on such pairs spends its
capacity on that shift. The gain is fitted on the 40x grid after a Gaussian blur that brings
both images to a common resolution and averages their noise, with a robust (soft-L1) loss so
that the few places where they differ (dust, a structure only one of them resolves) do not pull
it; the offset then makes the two means equal.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.optimize import least_squares

from deepscope.formats.pairs import IntensityMatch

#: Blur (40x pixels) bringing both images to a resolution they share before the fit.
COMMON_SIGMA_PX = 2.0
#: Pixels of the 40x grid between fitted samples.
SAMPLE_STEP_PX = 2


def fit_match(lr: np.ndarray, hr: np.ndarray) -> IntensityMatch:
    """Gains and offsets with ``gain * hr + offset`` matching *lr* per channel.

    Parameters
    ----------
    lr
        40x crop ``(h, w, c)``.
    hr
        Registered 100x image of the same area ``(h * scale, w * scale, c)``.
    """
    lo = np.atleast_3d(np.asarray(lr, np.float32))
    h, w, nc = lo.shape
    small = np.atleast_3d(
        cv2.resize(np.asarray(hr, np.float32), (w, h), interpolation=cv2.INTER_AREA)
    )
    gains, offsets = [], []
    for c in range(nc):
        a, b = (
            cv2.GaussianBlur(im[..., c], (0, 0), COMMON_SIGMA_PX)[
                ::SAMPLE_STEP_PX, ::SAMPLE_STEP_PX
            ].ravel()
            for im in (small, lo)
        )
        g0, o0 = np.polyfit(a, b, 1) if np.ptp(a) > 0 else (1.0, float(np.mean(b - a)))
        scale = max(float(np.median(np.abs(b - (g0 * a + o0)))) * 1.5, 1e-3)
        fit = least_squares(
            lambda p, a=a, b=b: p[0] * a + p[1] - b, x0=[g0, o0], loss="soft_l1", f_scale=scale
        )
        gain = float(fit.x[0])
        gains.append(gain)
        # the offset makes the means equal: the match never leaves a brightness shift to learn
        offsets.append(float(lo[..., c].mean() - gain * small[..., c].mean()))
    return IntensityMatch(gain=tuple(gains), offset=tuple(offsets))


def apply_match(hr: np.ndarray, match: IntensityMatch, white: float) -> np.ndarray:
    """*hr* with the match applied, float32, clipped to ``[0, white]``."""
    img = np.atleast_3d(np.asarray(hr, np.float32))
    out = img * np.asarray(match.gain, np.float32) + np.asarray(match.offset, np.float32)
    return np.clip(out, 0, white)
