"""Classical baselines: the PSF from the optics, tuning on validation, beating bicubic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dlm_pairs import write_sim_pairs

from deepscope.formats.pairs import load_pairset
from model.training.baselines import (
    RL_ITERATIONS,
    SIGMAS_PX,
    WIENER_BALANCES,
    Optics,
    optics_for_pairs,
    psf_on_grid,
    tune_baselines,
)
from model.training.data import load_fields
from model.training.infer import bicubic_upsample
from model.training.metrics import ssim_psnr


def _fwhm_px(psf: np.ndarray) -> float:
    """Full width at half maximum of the central row, linearly interpolated."""
    row = psf[psf.shape[0] // 2] / psf.max()
    c = len(row) // 2
    k = c + int(np.argmax(row[c:] < 0.5))
    return 2 * (k - 1 + (row[k - 1] - 0.5) / (row[k - 1] - row[k]) - c)


def test_psf_follows_the_optics() -> None:
    optics = Optics()
    assert optics.effective_na == pytest.approx(0.75)
    psf = psf_on_grid(optics, 0.55, 0.01, 1e-4)
    assert psf.sum() == pytest.approx(1.0)
    assert psf.shape[0] % 2 == 1
    np.testing.assert_allclose(psf, psf.T, atol=1e-12)
    np.testing.assert_allclose(psf, psf[::-1, ::-1], atol=1e-12)
    # Airy pattern: FWHM = 0.514 wavelength / NA (a point-like pixel on a fine grid)
    assert _fwhm_px(psf) * 0.01 == pytest.approx(0.514 * 0.55 / 0.75, rel=0.03)
    # wider for a longer wavelength, a lower NA and a larger camera pixel
    base = _fwhm_px(psf_on_grid(optics, 0.55, 0.074, 0.185))
    assert _fwhm_px(psf_on_grid(optics, 0.65, 0.074, 0.185)) > base
    assert _fwhm_px(psf_on_grid(Optics(objective_na=0.5), 0.55, 0.074, 0.185)) > base
    assert _fwhm_px(psf_on_grid(optics, 0.55, 0.074, 0.4)) > base
    assert Optics().channel_wavelengths(1) == (0.55,)


def test_baselines_tuned_on_validation_beat_bicubic_on_simulator_pairs(tmp_path: Path) -> None:
    pairs = write_sim_pairs(tmp_path / "pairs", n_train=0, n_val=2, n_test=3, lr_size=48)
    ps = load_pairset(pairs)
    assert optics_for_pairs(ps) == Optics()  # not a deepscope dataset: the paper's optics

    def prepared(split: str) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for f in load_fields(pairs, ps, split):  # type: ignore[arg-type]
            lr, hr = np.moveaxis(f.lr, 0, -1), np.moveaxis(f.hr, 0, -1)
            out.append((bicubic_upsample(lr, ps.scale), hr))
        return out

    val, test = prepared("val"), prepared("test")
    b = tune_baselines(
        val, optics_for_pairs(ps), pitch_um=0.074, pixel_um=0.185, max_value=ps.max_value
    )
    # every setting searched, and the one kept is the best on validation
    assert [s for s, _ in b.search["gaussian"]] == list(SIGMAS_PX)
    assert [s for s, _ in b.search["richardson_lucy"]] == list(RL_ITERATIONS)
    assert [s for s, _ in b.search["wiener"]] == list(WIENER_BALANCES)
    for key, chosen in (
        ("gaussian", b.gaussian_sigma_px),
        ("richardson_lucy", b.rl_iterations),
        ("wiener", b.wiener_balance),
    ):
        curve = dict(b.search[key])
        assert curve[chosen] == max(curve.values())
        assert max(curve.values()) - min(curve.values()) > 0.01  # the setting matters
    # the 100x is darker than the 40x: the fitted intensity map is not the identity
    assert any(abs(offset) > 20 for _, offset in b.intensity)
    # held-out fields: every tuned baseline beats bicubic on SSIM and PSNR
    scores = {m: [] for m in ("bicubic", "gaussian", "richardson_lucy", "wiener")}
    for bic, hr in test:
        for m, img in b.apply(bic).items():
            scores[m].append(ssim_psnr(img, hr, ps.max_value))
    mean = {m: np.mean(v, axis=0) for m, v in scores.items()}
    for m in ("gaussian", "richardson_lucy", "wiener"):
        assert mean[m][0] > mean["bicubic"][0] + 0.005, (m, mean)
        assert mean[m][1] > mean["bicubic"][1], (m, mean)
