"""How much of the 100x truth any method can recover without inventing detail: the band limit.

The 40x image carries no frequency above the 40x cut-off ``(NA + NA_condenser) / wavelength``;
a method that restores everything below it perfectly (no noise, the 100x contrast at every
frequency it passes) and invents nothing above it scores what the noise-free 100x truth
band-limited to that cut-off scores against the truth. That is the ceiling of deconvolution
and denoising; a network can only pass it with detail learned from the specimen's statistics.
The script also scores the 100x target itself against the truth (its noise and EDOF error),
and the classical methods (tuned on these fields' truth: a ceiling, not a fair baseline) on the
noise-free 40x image, which says how much of the gap is the 40x camera noise.

Run on a demo output directory (which logs the simulator's poses):

    python bench/bench_band_limit.py /tmp/demo [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from app.demo import SNAPS_NAME
from deepscope.formats.pairs import load_pairset
from model.training.baselines import optics_for_pairs, tune_baselines
from model.training.data import load_fields
from model.training.infer import bicubic_upsample
from model.training.metrics import bootstrap_mean, ssim_psnr
from model.training.truth import match_to_target, truth_image
from simulators.truth import PairTruth

#: Reflected margin (px) around a field before the FFT, so that its edges do not ring.
PAD_PX = 64


def band_limit(image: np.ndarray, cutoffs: tuple[float, ...], pitch_um: float) -> np.ndarray:
    """*image* ``(y, x, c)`` with every frequency above channel c's cut-off (cycles/um) removed."""
    out = np.empty(image.shape, dtype=np.float64)
    for c, cutoff in enumerate(cutoffs):
        padded = np.pad(image[..., c].astype(np.float64), PAD_PX, mode="reflect")
        fy = np.fft.fftfreq(padded.shape[0], d=pitch_um)[:, None]
        fx = np.fft.rfftfreq(padded.shape[1], d=pitch_um)[None, :]
        spectrum = np.fft.rfft2(padded) * (np.hypot(fy, fx) <= cutoff)
        out[..., c] = np.fft.irfft2(spectrum, s=padded.shape)[PAD_PX:-PAD_PX, PAD_PX:-PAD_PX]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, help="a 'deepscope demo' output directory")
    parser.add_argument("--seed", type=int, default=0, help="the demo's slide seed")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()

    pairs_dir = args.demo / "pairs"
    pairset = load_pairset(pairs_dir)
    snaps = args.demo / SNAPS_NAME
    truth = PairTruth(args.demo / "dataset", pairs_dir, snaps, args.seed)
    optics = optics_for_pairs(pairset)
    wavelengths = optics.channel_wavelengths(pairset.channels)
    cutoffs = tuple(2 * optics.effective_na / wl for wl in wavelengths)
    by_id = {p.pair_id: p for p in pairset.accepted()}
    rows: dict[str, list[tuple[float, float]]] = {"band_limited_truth": [], "target": []}
    clean_inputs = []
    for f in load_fields(pairs_dir, pairset, "test"):
        hr = np.moveaxis(f.hr, 0, -1)
        pair = by_id[f.pair_id]
        clean = truth_image(truth, pair, hr, pairset.edof)
        clean_lr = truth.input_truth(pair)
        if clean is None or clean_lr is None:
            continue
        ref, _ = match_to_target(clean, hr)
        limited = band_limit(ref, cutoffs, pairset.hr_pixel_size_um)
        rows["band_limited_truth"].append(ssim_psnr(limited, ref, pairset.max_value))
        rows["target"].append(ssim_psnr(hr, ref, pairset.max_value))
        clean_inputs.append((bicubic_upsample(clean_lr, pairset.scale), ref))
    if clean_inputs:
        oracle = tune_baselines(
            clean_inputs,
            optics,
            pitch_um=pairset.hr_pixel_size_um,
            pixel_um=pairset.lr_pixel_size_um,
            max_value=pairset.max_value,
        )
        for bic, ref in clean_inputs:
            for method, image in oracle.apply(bic).items():
                score = ssim_psnr(image, ref, pairset.max_value)
                rows.setdefault(f"noise_free_input_{method}", []).append(score)
    if not rows["target"]:
        print(f"{args.demo}: no test field has a logged truth", file=sys.stderr)
        return 2
    summary = {
        "fields": len(rows["target"]),
        "cutoffs_cycles_per_um": [round(c, 3) for c in cutoffs],
        **{
            f"{name}_{metric}": round(bootstrap_mean([v[i] for v in values]).mean, 4)
            for name, values in rows.items()
            for i, metric in enumerate(("ssim", "psnr"))
        },
    }
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
