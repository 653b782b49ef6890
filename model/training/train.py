"""Training loop: patches, MSE + gradient loss, Adam, validation SSIM/PSNR, resume, DDP."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from deepscope import __version__
from deepscope.atomic import atomic_write_text
from deepscope.errors import InputError
from deepscope.locking import locks_directory
from model.config import ModelConfig, NetworkConfig
from model.network import DeepMicroscopyNet
from model.pairs import PairSet, load_pairset
from model.store import save_model
from model.training.checkpoint import (
    CHECKPOINT_NAME,
    TrainState,
    load_checkpoint,
    save_checkpoint,
)
from model.training.config import TRAIN_CONFIG_NAME, EpochMetrics, TrainConfig, TrainResult
from model.training.data import (
    FieldPair,
    augment_codes,
    extract_patches,
    fit_normalisation,
    load_fields,
    make_batch,
)
from model.training.infer import bicubic_upsample
from model.training.metrics import ssim_psnr
from model.training.plots import plot_curves

log = logging.getLogger("deepscope.training")

METRICS_NAME = "metrics.csv"


def dlm_loss(pred: torch.Tensor, target: torch.Tensor, grad_lambda: float) -> torch.Tensor:
    """Paper loss: mean squared error + ``grad_lambda`` x mean squared image gradient of *pred*.

    The gradient term (finite differences along y and x) is the regulariser of Rivenson et al.
    (2017), eq. 1, with lambda ~ 0.001; it discourages noise amplification.
    """
    mse = F.mse_loss(pred, target)
    if grad_lambda == 0:
        return mse
    gy = pred[..., 1:, :] - pred[..., :-1, :]
    gx = pred[..., :, 1:] - pred[..., :, :-1]
    return mse + grad_lambda * (gy.pow(2).mean() + gx.pow(2).mean())


@dataclass(frozen=True)
class _Dist:
    rank: int
    world: int
    local_rank: int
    owns_group: bool

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_pref: str) -> _Dist:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    NCCL when the ranks train on CUDA, gloo on the CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(0, 1, 0, owns_group=False)
    owns = not dist.is_initialized()
    if owns:
        cuda = torch.cuda.is_available() and device_pref != "cpu"
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), owns)


def _pick_device(pref: str, local_rank: int) -> torch.device:
    if pref == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(pref)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={pref!r} requested but CUDA is not available; use 'cpu'")
    return device


def _bind_cuda(device: torch.device) -> None:
    """Make *device* the current CUDA device (NCCL needs it before the first collective)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)


def _set_determinism(config: TrainConfig, device: torch.device) -> None:
    torch.manual_seed(config.seed)
    deterministic = config.deterministic
    if deterministic is None:
        deterministic = device.type != "cuda"
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def _validate(
    net: DeepMicroscopyNet,
    cfg: ModelConfig,
    fields: list[FieldPair],
    max_value: float,
    device: torch.device,
) -> tuple[float, float]:
    """Mean SSIM and PSNR of the network on whole validation fields (fp32, as ``enhance``)."""
    from model.inference.engine import Enhancer  # the engine evaluation and live mode use

    enhancer = Enhancer(net, cfg, device=device, precision="fp32")  # works on its own copy
    scores = [
        ssim_psnr(enhancer.enhance(np.moveaxis(f.lr, 0, -1)), np.moveaxis(f.hr, 0, -1), max_value)
        for f in fields
    ]
    return float(np.mean([s for s, _ in scores])), float(np.mean([p for _, p in scores]))


def _bicubic_scores(fields: list[FieldPair], scale: float, max_value: float) -> tuple[float, float]:
    scores = [
        ssim_psnr(
            bicubic_upsample(np.moveaxis(f.lr, 0, -1), scale), np.moveaxis(f.hr, 0, -1), max_value
        )
        for f in fields
    ]
    return float(np.mean([s for s, _ in scores])), float(np.mean([p for _, p in scores]))


def _write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f for f in EpochMetrics.__dataclass_fields__])
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buf.getvalue())


@contextlib.contextmanager
def _summary_writer(out_dir: Path, enabled: bool) -> Iterator[Any]:
    """TensorBoard ``SummaryWriter`` when tensorboard is installed (else ``None``)."""
    writer = None
    if enabled:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out_dir / "tensorboard"))
        except ImportError:
            log.debug("tensorboard not installed; skipping TensorBoard logging")
    try:
        yield writer
    finally:
        if writer is not None:
            writer.close()


def _make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer) -> Any | None:
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=0.5, patience=max(1, config.early_stop_patience // 3)
        )
    return None


def _model_config(
    pairs_dir: Path,
    pairset: PairSet,
    config: TrainConfig,
    train: list[FieldPair],
    val: list[FieldPair],
) -> ModelConfig:
    net_cfg = NetworkConfig(
        scale=pairset.scale,
        channels=pairset.channels,
        global_skip=config.global_skip,
        num_blocks=config.num_blocks,
        base_channels=config.base_channels,
    )
    return ModelConfig(
        network=net_cfg,
        normalisation=fit_normalisation(train, config.normalisation, pairset.max_value),
        input_pixel_size_um=pairset.lr_pixel_size_um,
        output_pixel_size_um=pairset.hr_pixel_size_um,
        provenance={
            "pairs_dir": str(pairs_dir.resolve()),
            "pairs_source": pairset.source,
            "max_value": pairset.max_value,
            "train_pairs": [f.pair_id for f in train],
            "val_pairs": [f.pair_id for f in val],
            "deepscope_version": __version__,
            "train_config": config.model_dump(),
        },
    )


def _check_resume_config(saved: dict[str, Any], config: TrainConfig, path: Path) -> None:
    ours = config.model_dump()
    diff = sorted(k for k in ours if k != "epochs" and saved.get(k) != ours[k])
    if diff:
        raise InputError(
            f"{path} was made with other settings ({', '.join(diff)}); train with the same "
            "settings to resume, or pass --no-resume to start over"
        )


@locks_directory("out_dir", rank_zero_only=True)
def train_model(
    pairs_dir: str | Path,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    progress: Callable[[EpochMetrics], None] | None = None,
    cancel: threading.Event | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train the network on a pairs directory; write the best model into *out_dir*.

    Resumable: a checkpoint (weights, Adam state, RNG, counters) is written every
    ``config.checkpoint_every`` steps and at each epoch end; with *resume* a rerun continues from
    it and, on CPU with ``deterministic``, ends with the weights an uninterrupted run gets.
    Under ``torchrun`` each rank trains on its share of every batch (DistributedDataParallel).
    Setting *cancel* stops after the current step, keeping a checkpoint (``completed=False``).
    """
    config = config or TrainConfig()
    pairs_dir, out_dir = Path(pairs_dir), Path(out_dir)
    ddp = _init_distributed(config.device)
    try:
        return _train(pairs_dir, out_dir, config, ddp, progress, cancel, resume)
    finally:
        if ddp.owns_group:
            dist.destroy_process_group()


def _train(
    pairs_dir: Path,
    out_dir: Path,
    config: TrainConfig,
    ddp: _Dist,
    progress: Callable[[EpochMetrics], None] | None,
    cancel: threading.Event | None,
    resume: bool,
) -> TrainResult:
    pairset = load_pairset(pairs_dir)
    train_fields = load_fields(pairs_dir, pairset, "train")
    val_fields = load_fields(pairs_dir, pairset, "val")
    if not train_fields:
        raise InputError(f"{pairs_dir} has no accepted training pairs; register more fields")
    if not val_fields:
        log.warning("%s has no validation pairs; validating on the training fields", pairs_dir)
        val_fields = train_fields
    if config.batch_size % ddp.world:
        raise InputError(
            f"batch_size={config.batch_size} is not divisible by the {ddp.world} DDP ranks"
        )
    device = _pick_device(config.device, ddp.local_rank)
    _bind_cuda(device)
    _set_determinism(config, device)
    model_cfg = _model_config(pairs_dir, pairset, config, train_fields, val_fields)
    lr_p, hr_p = extract_patches(
        train_fields, model_cfg.normalisation, pairset.scale, config.patch_size, config.overlap
    )
    n = len(lr_p)
    batch = min(config.batch_size, n // ddp.world * ddp.world)
    if batch < ddp.world:
        raise InputError(f"{n} training patches cannot feed {ddp.world} DDP ranks")
    steps = n // batch
    log.info("%d training patches, %d steps of %d per epoch, device %s", n, steps, batch, device)

    net = DeepMicroscopyNet(model_cfg.network).to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    scheduler = _make_scheduler(config, optimizer)
    state = TrainState()
    ckpt_path = out_dir / CHECKPOINT_NAME
    if resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        _check_resume_config(ckpt.train_config, config, ckpt_path)
        state = ckpt.restore(net, optimizer, scheduler)
        log.info("resuming at epoch %d step %d", state.epoch + 1, state.step_in_epoch)
    if ddp.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / TRAIN_CONFIG_NAME, config.model_dump_json(indent=2) + "\n")
    model: torch.nn.Module = net
    if ddp.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(net, device_ids=ids)
    sampler: DistributedSampler[int] = DistributedSampler(
        range(n),  # type: ignore[arg-type]
        num_replicas=ddp.world,
        rank=ddp.rank,
        shuffle=True,
        seed=config.seed,
        drop_last=True,
    )
    per_rank = batch // ddp.world
    bicubic = _bicubic_scores(val_fields, pairset.scale, pairset.max_value)
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    config_json = config.model_dump_json()

    def checkpoint() -> None:
        if ddp.main:
            save_checkpoint(ckpt_path, net, optimizer, scheduler, state, config_json)

    cancelled = False
    with _summary_writer(out_dir, ddp.main) as writer:
        while state.epoch < config.epochs and not state.stopped_early and not cancelled:
            t0 = time.perf_counter()
            sampler.set_epoch(state.epoch)
            order = torch.tensor(list(sampler), dtype=torch.long)
            codes = augment_codes(n, config.seed, state.epoch, config.augment)
            model.train()
            bar = tqdm(
                total=steps,
                initial=state.step_in_epoch,
                desc=f"epoch {state.epoch + 1}/{config.epochs}",
                file=sys.stderr,
                disable=not ddp.main,
                leave=False,
            )
            while state.step_in_epoch < steps:
                s = state.step_in_epoch
                x, y = make_batch(lr_p, hr_p, order[s * per_rank : (s + 1) * per_rank], codes)
                x, y = x.to(device), y.to(device)
                if device.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                optimizer.zero_grad(set_to_none=True)
                with amp:
                    pred = model(x)
                loss = dlm_loss(pred.float(), y, config.grad_lambda)
                loss.backward()
                optimizer.step()
                loss_value = float(loss.detach())
                state.loss_sum += loss_value
                state.step_in_epoch += 1
                state.global_step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4g}")
                if state.global_step % config.checkpoint_every == 0:
                    checkpoint()
                if cancel is not None and cancel.is_set():
                    cancelled = True
                    break
            bar.close()
            if cancelled:
                checkpoint()
                break
            train_loss = state.loss_sum / steps
            if ddp.world > 1:
                t = torch.tensor([train_loss], dtype=torch.float64)
                dist.all_reduce(t)
                train_loss = float(t) / ddp.world
            val_ssim, val_psnr = _validate(net, model_cfg, val_fields, pairset.max_value, device)
            metrics = EpochMetrics(
                epoch=state.epoch + 1,
                train_loss=train_loss,
                val_ssim=val_ssim,
                val_psnr=val_psnr,
                lr=optimizer.param_groups[0]["lr"],
                seconds=time.perf_counter() - t0,
                patches=steps * batch,
            )
            improved = _close_epoch(state, metrics, config.early_stop_patience)
            if improved and ddp.main:
                save_model(out_dir, net, _with_metrics(model_cfg, state, bicubic))
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(val_ssim)
            elif scheduler is not None:
                scheduler.step()
            checkpoint()
            if ddp.main:
                _publish_epoch(out_dir, state, metrics, bicubic, writer)
            if progress is not None:
                progress(metrics)
    history = [EpochMetrics(**h) for h in state.history]
    return TrainResult(
        model_dir=out_dir,
        completed=not cancelled,
        stopped_early=state.stopped_early,
        best_epoch=state.best_epoch,
        best_val_ssim=state.best_val_ssim,
        best_val_psnr=state.best_val_psnr,
        bicubic_val_ssim=bicubic[0],
        bicubic_val_psnr=bicubic[1],
        history=history,
    )


def _close_epoch(state: TrainState, metrics: EpochMetrics, patience: int) -> bool:
    """Record a finished epoch in *state*; return whether it is the best so far (val SSIM)."""
    improved = metrics.val_ssim > state.best_val_ssim
    if improved:
        state.best_val_ssim, state.best_val_psnr = metrics.val_ssim, metrics.val_psnr
        state.best_epoch, state.bad_epochs = metrics.epoch, 0
    else:
        state.bad_epochs += 1
    state.history.append(asdict(metrics))
    state.epoch += 1
    state.step_in_epoch, state.loss_sum = 0, 0.0
    if patience and state.bad_epochs >= patience:
        log.info("early stop: no val SSIM gain for %d epochs", state.bad_epochs)
        state.stopped_early = True
    return improved


def _publish_epoch(
    out_dir: Path,
    state: TrainState,
    metrics: EpochMetrics,
    bicubic: tuple[float, float],
    writer: Any | None,
) -> None:
    """Write metrics.csv and curves.png, log to TensorBoard and the log (main rank only)."""
    _write_metrics_csv(out_dir / METRICS_NAME, state.history)
    plot_curves(out_dir / "curves.png", [EpochMetrics(**h) for h in state.history], bicubic)
    if writer is not None:
        for key in ("train_loss", "val_ssim", "val_psnr", "lr"):
            writer.add_scalar(key, getattr(metrics, key), metrics.epoch)
    log.info(
        "epoch %d: loss %.4g, val SSIM %.4f PSNR %.2f dB (bicubic %.4f / %.2f)",
        metrics.epoch,
        metrics.train_loss,
        metrics.val_ssim,
        metrics.val_psnr,
        *bicubic,
    )


def _with_metrics(cfg: ModelConfig, state: TrainState, bicubic: tuple[float, float]) -> ModelConfig:
    metrics = {
        "best_epoch": state.best_epoch,
        "val_ssim": state.best_val_ssim,
        "val_psnr": state.best_val_psnr,
        "bicubic_val_ssim": bicubic[0],
        "bicubic_val_psnr": bicubic[1],
        "global_step": state.global_step,
    }
    if not all(math.isfinite(v) for v in metrics.values()):
        raise InputError("training diverged (non-finite metrics); lower the learning rate")
    return cfg.model_copy(update={"metrics": metrics})
