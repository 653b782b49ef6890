"""How much of the 100x truth any method can recover without inventing detail: the band limit.

The 40x image carries no frequency above the 40x cut-off ``(NA + NA_condenser) / wavelength``;
a method that restores everything below it perfectly (no noise, the 100x contrast at every
frequency it passes) and invents nothing above it scores what the noise-free 100x truth
band-limited to that cut-off scores against the truth. That is the ceiling of deconvolution
and denoising; a network can only pass it with detail learned from the specimen's statistics.
The script also scores the 100x target itself against the truth (its noise and EDOF error),
and the classical methods (tuned on these fields' truth: a ceiling, not a fair baseline) on the
noise-free 40x image, which says how much of the gap is the 40x camera noise.

Per band of spatial frequency it reports, against the truth, the *transfer* (the share of the
truth's signal an image carries: ``Re(sum X T*) / sum |T|^2``; 1 is perfect, blur and
misalignment lower it, noise does not) and the *coherence* (``|sum X T*|^2 / (sum |X|^2
sum |T|^2)``; noise lowers it too) of the 100x target, of bicubic on the real 40x input and of
the demo's network.

Run on a demo output directory (which logs the simulator's poses):

    python bench/bench_band_limit.py /tmp/demo [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np

from app.demo import demo_truth
from deepscope.formats.pairs import load_pairset
from model.inference.engine import Enhancer
from model.store import load_model
from model.training.baselines import optics_for_pairs, tune_baselines
from model.training.data import load_fields
from model.training.infer import bicubic_upsample
from model.training.metrics import bootstrap_mean, ssim_psnr
from model.training.truth import match_to_target, truth_image

#: Reflected margin (px) around a field before the FFT, so that its edges do not ring.
PAD_PX = 64

#: Edges (cycles/um) of the frequency bands of the transfer table.
BANDS_CYCLES_PER_UM = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.5)


def band_sums(image: np.ndarray, truth: np.ndarray, pitch_um: float) -> np.ndarray:
    """``(3, bands)``: per band, sum of X T*, |X|^2 and |T|^2 of the channel means (Hann window)."""
    window = np.outer(np.hanning(image.shape[0]), np.hanning(image.shape[1]))

    def spectrum(a: np.ndarray) -> np.ndarray:
        grey = a.astype(np.float64).mean(axis=2)
        return np.fft.fft2((grey - grey.mean()) * window)

    x, t = spectrum(image), spectrum(truth)
    fy = np.fft.fftfreq(x.shape[0], d=pitch_um)[:, None]
    fx = np.fft.fftfreq(x.shape[1], d=pitch_um)[None, :]
    band = np.digitize(np.hypot(fy, fx), BANDS_CYCLES_PER_UM) - 1
    out = np.zeros((3, len(BANDS_CYCLES_PER_UM)))
    terms = ((x * np.conj(t)).real, np.abs(x) ** 2, np.abs(t) ** 2)
    for term, row in zip(terms, out, strict=True):
        row += np.bincount(band.ravel(), term.ravel(), minlength=len(row))[: len(row)]
    return out


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
    parser.add_argument("--model", type=Path, help="network to measure (default DEMO/model)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()

    pairs_dir = args.demo / "pairs"
    pairset = load_pairset(pairs_dir)
    truth = demo_truth(args.demo, args.seed)
    if truth is None:
        parser.error(f"{args.demo} has no simulator snaps log: not a 'deepscope demo' output")
    optics = optics_for_pairs(pairset)
    wavelengths = optics.channel_wavelengths(pairset.channels)
    cutoffs = tuple(2 * optics.effective_na / wl for wl in wavelengths)
    by_id = {p.pair_id: p for p in pairset.accepted()}
    net, cfg = load_model(
        args.model or args.demo / "model",
        expect_scale=pairset.scale,
        expect_channels=pairset.channels,
    )
    enhancer = Enhancer(net, cfg, device="cpu", precision="fp32")
    rows: dict[str, list[tuple[float, float]]] = {"band_limited_truth": [], "target": []}
    sums: dict[str, np.ndarray] = {}
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
        lr = np.moveaxis(f.lr, 0, -1)
        images = {
            "target": hr,
            "bicubic": bicubic_upsample(lr, pairset.scale),
            "network": enhancer.enhance(lr),
        }
        for name, image in images.items():
            total = sums.setdefault(name, np.zeros((3, len(BANDS_CYCLES_PER_UM))))
            total += band_sums(image, ref, pairset.hr_pixel_size_um)
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
        "bands_cycles_per_um": [f"{a:g}-{b:g}" for a, b in pairwise(BANDS_CYCLES_PER_UM)],
        **{
            f"{name}_{measure}": [round(float(v), 3) for v in values[:-1]]
            for name, (cross, power, truth_power) in sums.items()
            for measure, values in (
                ("transfer", cross / truth_power),
                ("coherence", cross**2 / (power * truth_power)),
            )
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
