"""Evaluation: metrics, whole-image inference, the SSIM/PSNR table, and beating bicubic."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from dlm_pairs import MAX_VALUE, one_thread, write_pairs, write_sim_pairs  # noqa: F401
from skimage.metrics import structural_similarity

from deepscope.cli import main
from deepscope.errors import InputError
from model.config import ModelConfig, NetworkConfig, Normalisation
from model.inference.engine import Enhancer
from model.network import DeepMicroscopyNet
from model.store import save_model
from model.training.config import TrainConfig
from model.training.evaluate import area_resize, evaluate_model
from model.training.infer import bicubic_upsample
from model.training.metrics import ssim_psnr
from model.training.train import train_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_ssim_psnr_conventions() -> None:
    rng = np.random.default_rng(0)
    target = rng.uniform(0, 4095, (40, 30, 3))
    assert ssim_psnr(target, target, 4095) == (1.0, math.inf)
    noisy = target + rng.normal(0, 40.95, target.shape)  # 1 % of the white level
    ssim, psnr = ssim_psnr(noisy, target, 4095)
    assert psnr == pytest.approx(40.0, abs=0.3)
    expected = structural_similarity(
        np.clip(noisy / 4095, 0, 1), target / 4095, data_range=1.0, channel_axis=-1
    )
    assert ssim == pytest.approx(expected)
    # larger images are cropped to the common area (the network's ceil size vs the target)
    padded = np.pad(noisy, ((0, 1), (0, 1), (0, 0)))
    assert ssim_psnr(padded, target, 4095) == (ssim, psnr)


def test_untrained_global_skip_enhances_to_bicubic_in_raw_units() -> None:
    cfg = ModelConfig(
        network=NetworkConfig(channels=1, global_skip=True, base_channels=4, num_blocks=1),
        normalisation=Normalisation.identity(1, 4095),
    )
    net = DeepMicroscopyNet(cfg.network)
    image = np.full((10, 12), 2000, np.uint16)
    out = Enhancer(net, cfg, device="cpu", precision="fp32").enhance(image)  # untrained = bicubic
    assert out.shape == (25, 30, 1)
    np.testing.assert_allclose(out, 2000, rtol=1e-5)
    np.testing.assert_allclose(bicubic_upsample(image[..., None], 2.5), out, rtol=1e-5)


def test_area_resize_keeps_mean() -> None:
    img = np.random.default_rng(0).uniform(0, 1, (250, 250, 3)).astype(np.float32)
    small = area_resize(img, 100, 100)
    assert small.shape == (100, 100, 3)
    assert float(small.mean()) == pytest.approx(float(img.mean()), rel=1e-4)


def test_evaluate_writes_table_and_figure(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs", n_train=0, n_val=0, n_test=2)
    cfg = ModelConfig(
        network=NetworkConfig(global_skip=True, base_channels=4, num_blocks=1),
        normalisation=Normalisation.identity(3, MAX_VALUE),
    )
    save_model(tmp_path / "m", DeepMicroscopyNet(cfg.network), cfg)
    report = evaluate_model(tmp_path / "m", pairs, tmp_path / "ev", regions=2)
    assert [f.pair_id for f in report.fields] == ["p000", "p001"]
    # an untrained global-skip network is exactly bicubic
    for f in report.fields:
        assert f.network_ssim == pytest.approx(f.bicubic_ssim, abs=1e-5)
        assert f.network_psnr == pytest.approx(f.bicubic_psnr, abs=1e-3)
    data = json.loads(report.json_path.read_text())
    assert data["mean"]["bicubic_ssim"] == pytest.approx(
        np.mean([f.bicubic_ssim for f in report.fields])
    )
    md = report.markdown_path.read_text()
    assert md.count("\n") == 2 + 2 + 1
    assert "| **mean** |" in md
    assert report.figure_path.read_bytes()[:4] == b"\x89PNG"


def test_evaluate_refuses_wrong_model_and_no_test_fields(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs", n_train=1, n_val=0, n_test=0, channels=1)
    cfg = ModelConfig(network=NetworkConfig(base_channels=4, num_blocks=1))
    save_model(tmp_path / "rgb", DeepMicroscopyNet(cfg.network), cfg)
    with pytest.raises(InputError, match="expects 3 channel"):
        evaluate_model(tmp_path / "rgb", pairs, tmp_path / "ev")
    mono = ModelConfig(
        network=NetworkConfig(channels=1, base_channels=4, num_blocks=1),
        normalisation=Normalisation.identity(1),
    )
    save_model(tmp_path / "mono", DeepMicroscopyNet(mono.network), mono)
    with pytest.raises(InputError, match="no accepted test pairs"):
        evaluate_model(tmp_path / "mono", pairs, tmp_path / "ev")


def test_training_on_simulator_beats_bicubic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = write_sim_pairs(tmp_path / "pairs", n_train=4, n_val=2, n_test=2)
    cfg = TrainConfig(
        epochs=3, batch_size=16, patch_size=24, lr=2e-3, base_channels=8, num_blocks=2
    )
    result = train_model(pairs, tmp_path / "m", cfg)
    assert result.best_val_ssim > result.bicubic_val_ssim
    assert result.best_val_psnr > result.bicubic_val_psnr
    code = main(["evaluate", str(tmp_path / "m"), str(pairs), "--no-mtf", "--json"])
    assert code == 0
    mean = json.loads(capsys.readouterr().out)["mean"]
    assert mean["network_ssim"] > mean["bicubic_ssim"]
    assert mean["network_psnr"] > mean["bicubic_psnr"] + 1.0
    assert (tmp_path / "m" / "evaluation" / "evaluation.md").is_file()
