"""Training: patches, loss, outputs, early stopping, cancel/resume, SIGKILL resume, DDP."""

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

from deepscope.cli import main
from deepscope.errors import InputError
from model.config import Normalisation
from model.pairs import load_pairset
from model.store import load_model
from model.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from model.training.config import EpochMetrics, TrainConfig
from model.training.data import (
    FieldPair,
    augment_codes,
    dihedral,
    extract_patches,
    load_fields,
    patch_starts,
)
from model.training.train import dlm_loss, train_model

ROOT = Path(__file__).resolve().parents[1]
TINY = {"batch_size": 12, "patch_size": 24, "lr": 1e-3, "base_channels": 8, "num_blocks": 2}

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
        "deepscope.cli",
        "train",
        str(pairs),
        "--out",
        str(out),
        "--config",
        str(cfg_path),
    ]


# -- data -------------------------------------------------------------------------------------


def test_patch_starts_cover_the_field_on_whole_100x_pixels() -> None:
    assert patch_starts(96, 60, 36, 2) == [0, 36]
    assert patch_starts(97, 60, 36, 2) == [0, 36]
    assert patch_starts(110, 60, 36, 2) == [0, 36, 50]
    assert patch_starts(59, 60, 36, 2) == []


def test_patches_are_aligned_pairs() -> None:
    rng = np.random.default_rng(1)
    hr = rng.uniform(0, 1, (1, 250, 250)).astype(np.float32)
    lr = hr.reshape(1, 50, 5, 50, 5).mean(axis=(2, 4)).repeat(2, 1).repeat(2, 2)  # 100x100
    norm = Normalisation.identity(1)
    lr_p, hr_p = extract_patches([FieldPair("a", lr, hr)], norm, 2.5, 60, 0.4)
    assert lr_p.shape == (9, 1, 60, 60)  # origins 0, 36, 40 in y and x
    assert hr_p.shape == (9, 1, 150, 150)
    # every patch pair shows the same area: 5x5 means of the target equal the input's 2x2 blocks
    blocks = hr_p.reshape(9, 1, 30, 5, 30, 5).mean(dim=(3, 5))
    torch.testing.assert_close(blocks, lr_p[:, :, ::2, ::2], rtol=0, atol=1e-6)


def test_patch_size_must_fit_scale() -> None:
    f = FieldPair("a", np.zeros((3, 40, 40), np.float32), np.zeros((3, 100, 100), np.float32))
    with pytest.raises(InputError, match="multiple of 2"):
        extract_patches([f], Normalisation.identity(3), 2.5, 25, 0.4)
    with pytest.raises(InputError, match="lower patch_size"):
        extract_patches([f], Normalisation.identity(3), 2.5, 60, 0.4)


def test_dihedral_group() -> None:
    x = torch.arange(12.0).reshape(1, 3, 4)
    outs = {
        (tuple(dihedral(x, c).shape), tuple(dihedral(x, c).flatten().tolist())) for c in range(8)
    }
    assert len(outs) == 8
    torch.testing.assert_close(dihedral(x, 0), x)
    codes = augment_codes(1000, seed=3, epoch=2, augment=True)
    torch.testing.assert_close(codes, augment_codes(1000, seed=3, epoch=2, augment=True))
    assert set(codes.tolist()) == set(range(8))
    assert not torch.equal(codes, augment_codes(1000, seed=3, epoch=3, augment=True))
    assert int(augment_codes(10, 0, 0, augment=False).abs().sum()) == 0


def test_loss_terms() -> None:
    target = torch.rand(2, 3, 10, 10)
    flat = torch.full((2, 3, 10, 10), 0.5)
    mse = torch.nn.functional.mse_loss(flat, target)
    torch.testing.assert_close(dlm_loss(flat, target, 1e-3), mse)  # no gradient in a flat image
    ramp = torch.arange(10.0).expand(2, 3, 10, 10).clone()
    extra = dlm_loss(ramp, target, 0.5) - dlm_loss(ramp, target, 0.0)
    torch.testing.assert_close(extra, torch.tensor(0.5 * 1.0))  # x steps of 1, no y steps


# -- the loop ----------------------------------------------------------------------------------


def test_outputs_and_model_config(pairs: Path, tmp_path: Path) -> None:
    seen: list[EpochMetrics] = []
    result = train_model(pairs, tmp_path / "m", _cfg(epochs=2), progress=seen.append)
    assert result.completed
    assert [m.epoch for m in seen] == [1, 2] == [m.epoch for m in result.history]
    rows = _csv_rows(tmp_path / "m" / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["val_ssim"]) == pytest.approx(seen[1].val_ssim)
    assert (tmp_path / "m" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert TrainConfig.from_file(tmp_path / "m" / "train_config.json") == _cfg(epochs=2)
    _net, cfg = load_model(tmp_path / "m", expect_scale=2.5, expect_channels=3)
    assert cfg.input_pixel_size_um == 0.185
    assert cfg.output_pixel_size_um == 0.074
    assert cfg.normalisation == Normalisation.identity(3, 4095.0)
    assert cfg.provenance["train_pairs"] == ["p000", "p001", "p002", "p003"]
    assert cfg.metrics["best_epoch"] == result.best_epoch
    assert cfg.metrics["val_ssim"] == pytest.approx(result.best_val_ssim)
    assert cfg.network.channel_pyramid() == [8, 13, 23]


def test_early_stopping(pairs: Path, tmp_path: Path) -> None:
    result = train_model(pairs, tmp_path / "m", _cfg(epochs=6, lr=1e-12, early_stop_patience=1))
    assert result.stopped_early
    assert len(result.history) == 2
    assert result.best_epoch == 1


def test_lr_schedule_cosine(pairs: Path, tmp_path: Path) -> None:
    result = train_model(pairs, tmp_path / "m", _cfg(epochs=2, lr_schedule="cosine"))
    assert result.history[0].lr == pytest.approx(1e-3)
    assert result.history[1].lr == pytest.approx(0.5e-3)


def test_cancel_then_resume_matches_uninterrupted(pairs: Path, tmp_path: Path) -> None:
    cfg = _cfg(epochs=2, checkpoint_every=100)
    full = train_model(pairs, tmp_path / "full", cfg)
    cancel = threading.Event()
    part = train_model(
        pairs, tmp_path / "part", cfg, progress=lambda m: cancel.set(), cancel=cancel
    )
    assert not part.completed
    assert (
        load_checkpoint(tmp_path / "part" / CHECKPOINT_NAME).header["state"]["step_in_epoch"] == 1
    )
    resumed = train_model(pairs, tmp_path / "part", cfg)
    assert resumed.completed
    assert resumed.history == [
        EpochMetrics(**{**h.__dict__, "seconds": r.seconds})
        for h, r in zip(full.history, resumed.history, strict=True)
    ]
    _assert_same(
        _weights(tmp_path / "part" / CHECKPOINT_NAME), _weights(tmp_path / "full" / CHECKPOINT_NAME)
    )


def test_resume_with_other_settings_is_refused(pairs: Path, tmp_path: Path) -> None:
    train_model(pairs, tmp_path / "m", _cfg(epochs=1))
    with pytest.raises(InputError, match=r"other settings \(lr\)"):
        train_model(pairs, tmp_path / "m", _cfg(epochs=2, lr=5e-4))
    again = train_model(pairs, tmp_path / "m", _cfg(epochs=1, lr=5e-4), resume=False)
    assert again.completed


def test_sigkill_then_resume_gives_identical_weights(
    pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _cfg(epochs=4, checkpoint_every=1)
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
    assert 2 <= step < 4 * 3
    capsys.readouterr()
    assert main([*_cli_train(pairs, out, cfg)[2:], "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["completed"]
    assert len(summary["history"]) == 4
    _assert_same(_weights(out / CHECKPOINT_NAME), _weights(tmp_path / "ref" / CHECKPOINT_NAME))
    _assert_same(_weights(out), _weights(tmp_path / "ref"))


def test_ddp_two_processes_match_single_process(pairs: Path, tmp_path: Path) -> None:
    cfg = _cfg(epochs=2)
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
    result = train_model(pairs, tmp_path / "m", _cfg(epochs=1, normalisation="mean_std"))
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
        train_model(pairs, tmp_path / "m", _cfg(epochs=1, device="cuda"))
