"""Training: crops, losses, schedule, outputs, init, cancel/resume, SIGKILL resume, DDP."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from dlm_pairs import one_thread, write_pairs  # noqa: F401 (fixture)
from safetensors.torch import load_file

from app.cli import main
from deepscope.errors import InputError
from deepscope.formats.pairs import load_pairset
from model.config import Normalisation
from model.store import load_model
from model.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from model.training.config import TrainConfig, ValMetrics
from model.training.data import CropSampler, FieldPair, dihedral, load_fields
from model.training.losses import dlm_loss, l1_ssim_loss
from model.training.train import lr_factor, train_model

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "batch_size": 12,
    "patch_size": 24,
    "lr": 1e-3,
    "base_channels": 8,
    "num_blocks": 2,
    "steps": 6,
    "val_every": 3,
}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("pairs"), n_train=4, n_val=1, n_test=1)


def _cfg(**kw: object) -> TrainConfig:
    return TrainConfig.model_validate({**TINY, **kw})


def _weights(model_or_ckpt: Path) -> dict[str, torch.Tensor]:
    if model_or_ckpt.is_dir():
        return load_file(str(model_or_ckpt / "model.safetensors"))
    ck = load_checkpoint(model_or_ckpt)
    return {k[6:]: v for k, v in ck.tensors.items() if k.startswith("model.")}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=k)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _cli_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = str(ROOT)
    return env


def _cli_train(pairs: Path, out: Path, cfg: TrainConfig) -> list[str]:
    cfg_path = out.parent / f"{out.name}-train.json"
    cfg_path.write_text(cfg.model_dump_json())
    return [
        "-m",
        "app.cli",
        "train",
        str(pairs),
        "--out",
        str(out),
        "--config",
        str(cfg_path),
    ]


# -- data -------------------------------------------------------------------------------------


def _blocky_field(size: int = 100) -> FieldPair:
    """A 1-channel pair whose 40x image is the 5x5 means of the 100x image, 2x2-replicated."""
    rng = np.random.default_rng(1)
    hr = rng.uniform(0, 1, (1, size * 5 // 2, size * 5 // 2)).astype(np.float32)
    n = size // 2
    lr = hr.reshape(1, n, 5, n, 5).mean(axis=(2, 4)).repeat(2, 1).repeat(2, 2)
    return FieldPair("a", lr, hr)


def test_crops_are_aligned_pairs_and_cover_every_position() -> None:
    sampler = CropSampler([_blocky_field()], Normalisation.identity(1), 2.5, 60)
    # the 100-px field mirrored by half a crop (30 px) a side: even origins 0..100
    assert sampler.counts.tolist() == [[51, 51]]
    seen = set()
    for step in range(40):
        lr, hr = sampler.batch(seed=0, step=step, size=16, augment=True)
        assert lr.shape == (16, 1, 60, 60)
        assert hr.shape == (16, 1, 150, 150)
        # same area whatever the flip/rotation: 5x5 means of the target = the input's 2x2 blocks
        blocks = hr.reshape(16, 1, 30, 5, 30, 5).mean(dim=(3, 5))
        torch.testing.assert_close(blocks, lr[:, :, ::2, ::2], rtol=0, atol=1e-6)
        seen.update(float(v) for v in lr[:, 0, 0, 0])
    assert len(seen) > 200  # fresh crops every step, not a fixed list


def test_crops_see_a_field_corner_as_often_as_its_centre() -> None:
    # each 40x pixel holds its own index; count how often crops show each pixel of the field
    lr = np.arange(40 * 40, dtype=np.float32).reshape(1, 40, 40)
    field = FieldPair("a", lr, np.zeros((1, 100, 100), np.float32))
    sampler = CropSampler([field], Normalisation.identity(1, 1.0), 2.5, 24)
    seen = np.zeros(40 * 40)
    for step in range(100):
        crops, _ = sampler.batch(seed=0, step=step, size=32, augment=True)
        seen += np.bincount(crops.numpy().astype(int).ravel(), minlength=40 * 40)
    seen = seen.reshape(40, 40)
    centre = seen[12:28, 12:28].mean()
    # uniform crop origins without the mirror: the corner pixel in 1 of 81 crops, the centre
    # in 144; with it, 169 and 144 (even origins: 13 of 25 rows and columns near a border)
    assert 0.85 < seen[:4, :4].mean() / centre < 1.25
    assert 0.85 < seen[:, :4].mean() / centre < 1.15
    assert seen.min() > 0.7 * centre


def test_batches_are_a_function_of_seed_and_step() -> None:
    sampler = CropSampler([_blocky_field()], Normalisation.identity(1), 2.5, 24)
    a = sampler.batch(seed=3, step=7, size=8, augment=True)
    b = sampler.batch(seed=3, step=7, size=8, augment=True)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a[0], sampler.batch(seed=3, step=8, size=8, augment=True)[0])
    half = sampler.batch(seed=3, step=7, size=8, augment=True, part=slice(4, 8))
    torch.testing.assert_close(half[0], a[0][4:])


def test_crop_size_must_fit_scale_and_fields() -> None:
    f = FieldPair("a", np.zeros((3, 40, 40), np.float32), np.zeros((3, 100, 100), np.float32))
    with pytest.raises(InputError, match="multiple of 2"):
        CropSampler([f], Normalisation.identity(3), 2.5, 25)
    with pytest.raises(InputError, match="lower patch_size"):
        CropSampler([f], Normalisation.identity(3), 2.5, 60)


def test_dihedral_group() -> None:
    x = torch.arange(12.0).reshape(1, 3, 4)
    outs = {
        (tuple(dihedral(x, c).shape), tuple(dihedral(x, c).flatten().tolist())) for c in range(8)
    }
    assert len(outs) == 8
    torch.testing.assert_close(dihedral(x, 0), x)


def test_warmup_then_cosine() -> None:
    assert lr_factor(0.025, 0.05) == pytest.approx(0.5)
    assert lr_factor(0.05, 0.05) == pytest.approx(1.0)
    assert lr_factor(0.525, 0.05) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(1.0, 0.05) == pytest.approx(0.01)
    assert lr_factor(0.0, 0.05) == pytest.approx(0.01)  # never a zero step


def test_loss_terms() -> None:
    target = torch.rand(2, 3, 10, 10)
    flat = torch.full((2, 3, 10, 10), 0.5)
    mse = torch.nn.functional.mse_loss(flat, target)
    torch.testing.assert_close(dlm_loss(flat, target, 1e-3), mse)  # no gradient in a flat image
    ramp = torch.arange(10.0).expand(2, 3, 10, 10).clone()
    extra = dlm_loss(ramp, target, 0.5) - dlm_loss(ramp, target, 0.0)
    torch.testing.assert_close(extra, torch.tensor(0.5 * 1.0))  # x steps of 1, no y steps


def test_l1_ssim_loss_is_zero_only_for_the_target() -> None:
    target = torch.rand(2, 3, 32, 32)
    assert float(l1_ssim_loss(target, target, 0.5, 1.0)) == pytest.approx(0.0, abs=1e-6)
    noisy = target + 0.05 * torch.randn_like(target)
    blurred = torch.nn.functional.avg_pool2d(target, 3, 1, 1)
    for other in (noisy, blurred):
        full = float(l1_ssim_loss(other, target, 0.5, 1.0))
        l1 = float(l1_ssim_loss(other, target, 0.0, 1.0))
        assert full > 0.5 * l1 > 0  # the SSIM half adds to the L1 half


# -- the loop ----------------------------------------------------------------------------------


def test_outputs_and_model_config(pairs: Path, tmp_path: Path) -> None:
    seen: list[ValMetrics] = []
    result = train_model(pairs, tmp_path / "m", _cfg(), progress=seen.append)
    assert result.completed
    assert result.steps == 6
    assert [m.step for m in seen] == [3, 6] == [m.step for m in result.history]
    assert [m.patches for m in seen] == [36, 36]
    rows = _csv_rows(tmp_path / "m" / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [3, 6]
    assert float(rows[1]["val_ssim"]) == pytest.approx(seen[1].val_ssim)
    assert (tmp_path / "m" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert TrainConfig.from_file(tmp_path / "m" / "train_config.json") == _cfg()
    _net, cfg = load_model(tmp_path / "m", expect_scale=2.5, expect_channels=3)
    assert cfg.input_pixel_size_um == 0.185
    assert cfg.output_pixel_size_um == 0.074
    assert cfg.normalisation == Normalisation.identity(3, 4095.0)
    assert cfg.provenance["train_pairs"] == ["p000", "p001", "p002", "p003"]
    assert cfg.metrics["best_step"] == result.best_step
    assert cfg.metrics["val_psnr"] == pytest.approx(result.best_val_psnr)
    assert cfg.metrics["beats_bicubic"] == result.beats_bicubic
    assert cfg.network.channel_pyramid() == [8, 13, 23]
    assert result.steps_per_second > 0


def test_model_kept_is_the_best_validation_psnr(pairs: Path, tmp_path: Path) -> None:
    result = train_model(pairs, tmp_path / "m", _cfg(steps=8, val_every=2, lr=3e-3))
    best = max(result.history, key=lambda m: m.val_psnr)
    assert result.best_step == best.step
    assert result.best_val_psnr == best.val_psnr


def test_early_stopping(pairs: Path, tmp_path: Path) -> None:
    cfg = _cfg(steps=12, val_every=2, lr=1e-12, early_stop_patience=1)
    result = train_model(pairs, tmp_path / "m", cfg)
    assert result.stopped_early
    assert len(result.history) == 2
    assert result.best_step == 2


def test_warning_when_the_model_does_not_beat_bicubic(
    pairs: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the paper network, untrained for one tiny step, is far from the target
    result = train_model(pairs, tmp_path / "m", _cfg(steps=1, global_skip=False))
    assert not result.beats_bicubic
    assert "does not beat bicubic" in caplog.text
    _net, cfg = load_model(tmp_path / "m")
    assert cfg.metrics["beats_bicubic"] is False


def test_wall_clock_budget_ends_training(pairs: Path, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    result = train_model(pairs, tmp_path / "m", _cfg(steps=1_000_000, minutes=0.05))
    assert result.completed
    assert 1 <= result.steps < 1_000_000
    assert time.perf_counter() - t0 < 60
    assert result.history[-1].step == result.steps  # validated at the end


def test_init_fine_tunes_from_a_model(pairs: Path, tmp_path: Path) -> None:
    base = train_model(pairs, tmp_path / "base", _cfg(normalisation="mean_std"))
    # the architecture and normalisation come from the init model, not from the flags
    cfg = _cfg(steps=1, val_every=1, lr=1e-12, base_channels=4)
    tuned = train_model(pairs, tmp_path / "tuned", cfg, init=tmp_path / "base")
    _, base_cfg = load_model(tmp_path / "base")
    _, tuned_cfg = load_model(tmp_path / "tuned")
    assert tuned_cfg.network == base_cfg.network
    assert tuned_cfg.normalisation == base_cfg.normalisation
    assert tuned_cfg.provenance["init_model"]["path"] == str((tmp_path / "base").resolve())
    # lr ~ 0: the fine-tuned weights are the init weights
    _assert_same(_weights(tmp_path / "tuned"), _weights(tmp_path / "base"), atol=1e-6)
    assert tuned.best_val_psnr == pytest.approx(base.best_val_psnr, abs=1e-3)


def test_init_model_of_other_scale_or_optics_is_refused(pairs: Path, tmp_path: Path) -> None:
    from model.config import ModelConfig, NetworkConfig
    from model.network import DeepMicroscopyNet
    from model.store import save_model

    other = ModelConfig(network=NetworkConfig(scale=2.0, base_channels=4, num_blocks=1))
    save_model(tmp_path / "x2", DeepMicroscopyNet(other.network), other)
    with pytest.raises(InputError, match=r"scale 2\.0"):
        train_model(pairs, tmp_path / "m", _cfg(), init=tmp_path / "x2")
    optics = ModelConfig(
        network=NetworkConfig(base_channels=4, num_blocks=1), input_pixel_size_um=0.3
    )
    save_model(tmp_path / "px", DeepMicroscopyNet(optics.network), optics)
    with pytest.raises(InputError, match=r"0\.3 um input pixels"):
        train_model(pairs, tmp_path / "m", _cfg(), init=tmp_path / "px")
    assert not (tmp_path / "m").exists()


def test_no_validation_split_is_refused_before_writing(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs", n_train=2, n_val=0, n_test=1)
    with pytest.raises(InputError, match="no accepted validation pairs"):
        train_model(pairs, tmp_path / "m", _cfg())
    assert not (tmp_path / "m").exists()


def test_cancel_then_resume_matches_uninterrupted(pairs: Path, tmp_path: Path) -> None:
    cfg = _cfg(checkpoint_every=100)
    full = train_model(pairs, tmp_path / "full", cfg)
    cancel = threading.Event()
    part = train_model(
        pairs, tmp_path / "part", cfg, progress=lambda m: cancel.set(), cancel=cancel
    )
    assert not part.completed
    assert load_checkpoint(tmp_path / "part" / CHECKPOINT_NAME).header["state"]["global_step"] == 3
    resumed = train_model(pairs, tmp_path / "part", cfg)
    assert resumed.completed
    assert resumed.history == [
        ValMetrics(**{**h.__dict__, "seconds": r.seconds})
        for h, r in zip(full.history, resumed.history, strict=True)
    ]
    _assert_same(
        _weights(tmp_path / "part" / CHECKPOINT_NAME), _weights(tmp_path / "full" / CHECKPOINT_NAME)
    )


def test_resume_with_other_settings_is_refused(pairs: Path, tmp_path: Path) -> None:
    train_model(pairs, tmp_path / "m", _cfg(steps=3))
    with pytest.raises(InputError, match=r"other settings \(lr\)"):
        train_model(pairs, tmp_path / "m", _cfg(steps=6, lr=5e-4))
    # a longer budget or another device is not another setting
    longer = train_model(pairs, tmp_path / "m", _cfg(steps=6, device="cpu"))
    assert longer.steps == 6
    again = train_model(pairs, tmp_path / "m", _cfg(steps=3, lr=5e-4), resume=False)
    assert again.completed


def test_sigkill_then_resume_gives_identical_weights(
    pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _cfg(steps=12, checkpoint_every=1)
    threads = torch.get_num_threads()
    train_model(pairs, tmp_path / "ref", cfg)
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, *_cli_train(pairs, out, cfg)],
        env=_cli_env(threads),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = out / CHECKPOINT_NAME
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if ckpt.is_file() and load_checkpoint(ckpt).header["state"]["global_step"] >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
    step = load_checkpoint(ckpt).header["state"]["global_step"]
    assert 2 <= step < 12
    capsys.readouterr()
    assert main([*_cli_train(pairs, out, cfg)[2:], "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["completed"]
    assert len(summary["history"]) == 4  # validations at steps 3, 6, 9, 12
    _assert_same(_weights(out / CHECKPOINT_NAME), _weights(tmp_path / "ref" / CHECKPOINT_NAME))
    _assert_same(_weights(out), _weights(tmp_path / "ref"))


def test_ddp_two_processes_match_single_process(pairs: Path, tmp_path: Path) -> None:
    cfg = _cfg()
    single = train_model(pairs, tmp_path / "single", cfg)
    out = tmp_path / "ddp"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            *_cli_train(pairs, out, cfg),
        ],
        env=_cli_env(1),
        capture_output=True,
        check=True,
        timeout=120,
    )
    _assert_same(
        _weights(out / CHECKPOINT_NAME), _weights(tmp_path / "single" / CHECKPOINT_NAME), atol=1e-4
    )
    rows = _csv_rows(out / "metrics.csv")
    assert len(rows) == 2
    for row, ref in zip(rows, single.history, strict=True):
        assert float(row["train_loss"]) == pytest.approx(ref.train_loss, rel=1e-3)
        assert float(row["val_ssim"]) == pytest.approx(ref.val_ssim, abs=1e-3)
        assert int(row["patches"]) == ref.patches


def test_mean_std_normalisation_is_recorded(pairs: Path, tmp_path: Path) -> None:
    result = train_model(pairs, tmp_path / "m", _cfg(steps=2, normalisation="mean_std"))
    assert result.completed
    _net, cfg = load_model(tmp_path / "m")
    fields = load_fields(pairs, load_pairset(pairs), "train")
    lr = np.concatenate([f.lr.reshape(3, -1) for f in fields], axis=1)
    np.testing.assert_allclose(cfg.normalisation.input_offset, lr.mean(1), rtol=1e-5)
    np.testing.assert_allclose(cfg.normalisation.input_scale, lr.std(1), rtol=1e-5)
    assert math.isfinite(result.best_val_psnr)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on CPU-only machines")
def test_cuda_request_without_cuda_is_an_input_error(pairs: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="CUDA is not available"):
        train_model(pairs, tmp_path / "m", _cfg(steps=1, device="cuda"))
