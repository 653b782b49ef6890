"""EDOF fusion on simulated 100x z-stacks, against the noise-free stack and the ideal EDOF.

For each field the simulator snaps a 100x z-stack (exposures averaged per plane, as the demo
does) and the same stack without camera noise, and renders the *ideal EDOF*: every specimen
layer at the focus of the stack plane nearest to it (what a perfect fusion of these planes
could show, independent of the fusion method). Reported, as means over fields: SSIM and RMS
(counts) of the EDOF of the noisy stack against the ideal EDOF and against the EDOF of the
noise-free stack, and the noise factor (RMS error of five equally sharp noisy copies of one
plane, fused, over the noise of one copy).

    python bench/bench_edof.py [--seed 0] [--px 384] [--fields 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from skimage.metrics import structural_similarity

from model.registration.focus import edof_wavelet
from simulators.core import make_core, microscope_of
from simulators.dataset import tissue_region
from simulators.render import TileCache, optical_image
from simulators.specimen import Specimen

MARGIN = 8  # px left out at each edge


class _LayersAt:
    """A specimen whose layers sit at other heights (its transmittance is the real one's)."""

    def __init__(self, real: Specimen, layers_z_um: np.ndarray) -> None:
        self.real = real
        self.layers_z_um = tuple(float(z) for z in layers_z_um)

    def render(
        self, x0_um: float, y0_um: float, pitch_um: float, rows: int, cols: int
    ) -> np.ndarray:
        return self.real.render(x0_um, y0_um, pitch_um, rows, cols)

    def tissue_fraction(self, x_um: float, y_um: float, width_um: float, height_um: float) -> float:
        return self.real.tissue_fraction(x_um, y_um, width_um, height_um)


def _stacks(seed: int, px: int, fields: int, planes: int = 5, step_um: float = 0.4) -> list:
    """(noisy, noise-free, ideal EDOF) per field, in camera counts."""
    core = make_core(seed=seed, sensor=(px, px))
    scope = microscope_of(core)
    cx, cy = tissue_region(seed, 60.0)
    core.setConfig("Objective", "100x")
    core.setExposure(10.0)
    parfocal = scope.objectives["100x"].parfocal_z_um
    spec, pitch = scope.spec("100x"), scope.nominal_pixel_size_um("100x")
    out = []
    for k in range(fields):
        core.setXYPosition(cx + (k - 1) * 30.0, cy + (k % 2) * 20.0)
        noisy, clean, snaps = [], [], []
        for i in range(planes):
            core.setPosition(parfocal + (i - planes // 2) * step_um)
            shots = []
            for _ in range(2):
                core.snapImage()
                shots.append(core.getImage().astype(np.float32))
            noisy.append(np.rint(np.mean(shots, axis=0)))
            camera = scope.camera
            scope.camera = camera.model_copy(update={"noise": False})
            core.snapImage()
            clean.append(core.getImage().astype(np.float32))
            scope.camera = camera
            snaps.append(scope.snap_log[-1])
        foci = np.array([s.true_z_um - parfocal for s in snaps])
        layers = np.array(scope.specimen.layers_z_um)
        nearest = foci[np.abs(foci[None, :] - layers[:, None]).argmin(axis=1)]
        mid = snaps[planes // 2]
        f_mid = float(foci[planes // 2])
        moved = TileCache(_LayersAt(scope.specimen, f_mid - (nearest - layers)))
        ideal = optical_image(moved, spec, pitch, mid.affine(), (px, px), f_mid)
        at_mid = optical_image(scope._tiles, spec, pitch, mid.affine(), (px, px), f_mid)
        offset = scope.camera.offset_counts
        # the snap's vignetting and transmission, taken from the noise-free mid plane
        ideal_counts = offset + (clean[planes // 2] - offset) * ideal / np.maximum(at_mid, 1e-6)
        out.append((np.stack(noisy), np.stack(clean), ideal_counts.astype(np.float32)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--px", type=int, default=384)
    parser.add_argument("--fields", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))

    def score(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        ssim = structural_similarity(a[inner], b[inner], channel_axis=-1, data_range=4095)
        return float(ssim), float(np.sqrt(np.mean((a[inner] - b[inner]) ** 2)))

    rows: dict[str, list[float]] = {}
    for noisy, clean, ideal in _stacks(args.seed, args.px, args.fields):
        fused, fused_clean = edof_wavelet(noisy), edof_wavelet(clean)
        noise = noisy - clean  # five independent noise fields
        copies = edof_wavelet(clean[len(clean) // 2][None] + noise)
        mid = clean[len(clean) // 2]
        values = {
            "vs_ideal": score(fused, ideal),
            "noise_free_vs_ideal": score(fused_clean, ideal),
            "vs_noise_free_edof": score(fused, fused_clean),
            "best_noisy_plane_vs_ideal": max(score(p, ideal) for p in noisy),
        }
        for name, (ssim, rms) in values.items():
            rows.setdefault(f"{name}_ssim", []).append(ssim)
            rows.setdefault(f"{name}_rms", []).append(rms)
        factor = score(copies, mid)[1] / float(np.sqrt(np.mean(noise[:, inner[0], inner[1]] ** 2)))
        rows.setdefault("noise_factor", []).append(factor)
    summary = {k: round(float(np.mean(v)), 4) for k, v in rows.items()}
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
