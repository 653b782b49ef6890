"""The reference model shipped in model/reference/: complete, and better than the baselines."""

from __future__ import annotations

from pathlib import Path

import pytest
from dlm_pairs import one_thread, simulated_pairs_dataset  # noqa: F401 (fixture)

from model.registration import RegistrationOptions, register_dataset
from model.store import load_model, reference_model_dir
from model.training.evaluate import CLASSICAL, evaluate_model

pytestmark = pytest.mark.usefixtures("one_thread")

#: A slide the reference never saw (it was trained on seed 11; the demo uses 0).
FRESH_SEED = 23
SENSOR = 256


def test_reference_model_is_complete_and_says_how_it_was_made() -> None:
    net, cfg = load_model(reference_model_dir(), expect_scale=2.5, expect_channels=3)
    assert sum(p.numel() for p in net.parameters()) > 100_000
    assert cfg.input_pixel_size_um == pytest.approx(0.185)
    assert cfg.output_pixel_size_um == pytest.approx(0.074)
    made = cfg.provenance["made_by"]
    assert made["command"].startswith("python bench/train_reference.py")
    assert len(made["commit"]) == 40
    assert cfg.provenance["train_config"]["seed"] != FRESH_SEED
    assert cfg.metrics["beats_bicubic"] is True
    assert cfg.metrics["global_step"] >= 1000


@pytest.mark.slow
def test_reference_model_beats_every_baseline_on_ssim_on_a_fresh_slide(
    tmp_path: Path,
) -> None:
    sim = simulated_pairs_dataset(
        tmp_path / "ds", seed=FRESH_SEED, sensor=SENSOR, n_targets=8, z_slices=5
    )
    pairs = tmp_path / "pairs"
    # no training fields: validation tunes the baselines, the rest is test
    register_dataset(sim.path, pairs, RegistrationOptions(seed=0, split=(0.0, 0.375, 0.625)))
    report = evaluate_model(reference_model_dir(), pairs, tmp_path / "ev")
    mean = report.mean
    for method in CLASSICAL:
        assert mean["network_ssim"] > mean[f"{method}_ssim"], report.shortfalls
    # measured here (2026-12-02): PSNR 32.37 dB vs bicubic 32.00 and Richardson-Lucy 32.48:
    # on these raw pairs (no flat field, single exposures) RL is ahead on PSNR, so only the
    # margin over bicubic is asserted (see BENCHMARKS.md, reference model)
    assert mean["network_psnr"] > mean["bicubic_psnr"]
