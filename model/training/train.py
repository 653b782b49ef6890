"""Training loop: random crops every step, warm-up + cosine schedule, validation, resume, DDP."""

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
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from deepscope import __version__
from deepscope.atomic import atomic_write_text
from deepscope.errors import InputError
from deepscope.formats.pairs import PairSet, load_pairset
from deepscope.locking import locks_directory
from model.config import ModelConfig, NetworkConfig
from model.device import resolve_device
from model.network import DeepMicroscopyNet
from model.store import load_model, save_model
from model.training.checkpoint import (
    CHECKPOINT_NAME,
    TrainState,
    load_checkpoint,
    save_checkpoint,
)
from model.training.config import (
    RESUMABLE_CHANGES,
    TRAIN_CONFIG_NAME,
    TrainConfig,
    TrainResult,
    ValMetrics,
)
from model.training.data import CropSampler, FieldPair, fit_normalisation, load_fields
from model.training.infer import bicubic_upsample
from model.training.losses import Loss, make_loss
from model.training.metrics import ssim_psnr
from model.training.plots import plot_curves

log = logging.getLogger("deepscope.training")

METRICS_NAME = "metrics.csv"
#: Lowest learning rate of the cosine, as a fraction of the peak.
MIN_LR_FRACTION = 0.01
#: Input pixel sizes of an ``--init`` model and the pairs may differ by this fraction.
PIXEL_SIZE_TOLERANCE = 0.02


def lr_factor(progress: float, warmup: float) -> float:
    """Learning-rate multiplier at *progress* (0..1 of the budget): linear warm-up, cosine."""
    if progress < warmup:
        return max(progress / warmup, MIN_LR_FRACTION)
    t = min(1.0, (progress - warmup) / (1 - warmup))
    return MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * t))


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
    writer = csv.DictWriter(buf, fieldnames=list(ValMetrics.__dataclass_fields__))
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


def _model_config(
    pairs_dir: Path,
    pairset: PairSet,
    config: TrainConfig,
    train: list[FieldPair],
    val: list[FieldPair],
    init: ModelConfig | None,
    init_dir: Path | None,
) -> ModelConfig:
    net_cfg = NetworkConfig(
        scale=pairset.scale,
        channels=pairset.channels,
        global_skip=config.global_skip,
        num_blocks=config.num_blocks,
        base_channels=config.base_channels,
    )
    provenance: dict[str, Any] = {
        "pairs_dir": str(pairs_dir.resolve()),
        "pairs_source": pairset.source,
        "max_value": pairset.max_value,
        "train_pairs": [f.pair_id for f in train],
        "val_pairs": [f.pair_id for f in val],
        "deepscope_version": __version__,
        "train_config": config.model_dump(),
    }
    if init is not None:
        provenance["init_model"] = {"path": str(init_dir), "metrics": init.metrics}
    return ModelConfig(
        network=init.network if init is not None else net_cfg,
        normalisation=(
            init.normalisation
            if init is not None
            else fit_normalisation(train, config.normalisation, pairset.max_value)
        ),
        input_pixel_size_um=pairset.lr_pixel_size_um,
        output_pixel_size_um=pairset.hr_pixel_size_um,
        provenance=provenance,
    )


def _load_init(
    init_dir: Path, pairset: PairSet, config: TrainConfig
) -> tuple[DeepMicroscopyNet, ModelConfig, TrainConfig]:
    """The ``--init`` model, checked against the pairs; *config* takes its architecture."""
    net, cfg = load_model(init_dir, expect_scale=pairset.scale, expect_channels=pairset.channels)
    ours, theirs = pairset.lr_pixel_size_um, cfg.input_pixel_size_um
    if ours and theirs and abs(ours - theirs) > PIXEL_SIZE_TOLERANCE * theirs:
        raise InputError(
            f"--init model {init_dir} was trained on {theirs} um input pixels, the pairs have "
            f"{ours} um; fine-tune only a model made for the same objective and camera"
        )
    arch = {
        "global_skip": cfg.network.global_skip,
        "num_blocks": cfg.network.num_blocks,
        "base_channels": cfg.network.base_channels,
    }
    return net, cfg, config.model_copy(update=arch)


def _check_resume_config(saved: dict[str, Any], config: TrainConfig, path: Path) -> None:
    ours = config.model_dump()
    diff = sorted(k for k in ours if k not in RESUMABLE_CHANGES and saved.get(k) != ours[k])
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
    init: str | Path | None = None,
    progress: Callable[[ValMetrics], None] | None = None,
    cancel: threading.Event | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train the network on a pairs directory; write the best model into *out_dir*.

    The model kept is the one with the best validation PSNR (SSIM is reported beside it; on
    noisy 100x targets SSIM rewards smoothing). *init* fine-tunes from a model directory
    (its architecture and normalisation are kept). Resumable: a checkpoint (weights, Adam state,
    RNG, counters) is written every ``config.checkpoint_every`` steps and at each validation;
    with *resume* a rerun continues from it and, on the CPU with ``deterministic`` and a step
    budget, ends with the weights an uninterrupted run gets. Under ``torchrun`` each rank
    trains on its share of every batch (DistributedDataParallel). Setting *cancel* stops after
    the current step, keeping a checkpoint (``completed=False``).
    """
    config = config or TrainConfig()
    pairs_dir, out_dir = Path(pairs_dir), Path(out_dir)
    ddp = _init_distributed(config.device)
    try:
        return _train(pairs_dir, out_dir, config, ddp, init, progress, cancel, resume)
    finally:
        if ddp.owns_group:
            dist.destroy_process_group()


@dataclass
class _Run:
    """What one training run works with (built once by :func:`_prepare`)."""

    config: TrainConfig
    model_cfg: ModelConfig
    net: DeepMicroscopyNet
    sampler: CropSampler
    val_fields: list[FieldPair]
    max_value: float
    device: torch.device


def _prepare(pairs_dir: Path, config: TrainConfig, ddp: _Dist, init: str | Path | None) -> _Run:
    """Check the data and settings (before anything is written) and build the network."""
    pairset = load_pairset(pairs_dir)
    train_fields = load_fields(pairs_dir, pairset, "train")
    val_fields = load_fields(pairs_dir, pairset, "val")
    if not train_fields:
        raise InputError(f"{pairs_dir} has no accepted training pairs; register more fields")
    if not val_fields:
        raise InputError(
            f"{pairs_dir} has no accepted validation pairs: a model cannot be selected without "
            "them; register more fields (about one in six goes to validation)"
        )
    if config.batch_size % ddp.world:
        raise InputError(
            f"batch_size={config.batch_size} is not divisible by the {ddp.world} DDP ranks"
        )
    device = resolve_device(config.device, ddp.local_rank)
    init_net, init_cfg = None, None
    if init is not None:
        init_net, init_cfg, config = _load_init(Path(init), pairset, config)
    model_cfg = _model_config(
        pairs_dir,
        pairset,
        config,
        train_fields,
        val_fields,
        init_cfg,
        Path(init).resolve() if init is not None else None,
    )
    sampler = CropSampler(train_fields, model_cfg.normalisation, pairset.scale, config.patch_size)
    _bind_cuda(device)
    _set_determinism(config, device)
    net = DeepMicroscopyNet(model_cfg.network)
    if init_net is not None:
        net.load_state_dict(init_net.state_dict())
    net = net.to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return _Run(config, model_cfg, net, sampler, val_fields, pairset.max_value, device)


def _data_range(model_cfg: ModelConfig, max_value: float) -> float:
    """The white level in the network's normalised target units (for SSIM)."""
    return float(max_value / np.mean(model_cfg.normalisation.target_scale))


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Loss,
    x: torch.Tensor,
    y: torch.Tensor,
    amp: contextlib.AbstractContextManager[Any],
) -> torch.Tensor:
    """One optimizer step on a batch: forward under *amp*, float32 loss, backward, update.

    Returns the (detached) loss. Used by :func:`train_model` and ``bench/bench_train.py``.
    """
    optimizer.zero_grad(set_to_none=True)
    with amp:
        pred = model(x)
    loss = loss_fn(pred.float(), y)
    loss.backward()
    optimizer.step()
    return loss.detach()


def _train(
    pairs_dir: Path,
    out_dir: Path,
    config: TrainConfig,
    ddp: _Dist,
    init: str | Path | None,
    progress: Callable[[ValMetrics], None] | None,
    cancel: threading.Event | None,
    resume: bool,
) -> TrainResult:
    run = _prepare(pairs_dir, config, ddp, init)
    config, net, device = run.config, run.net, run.device
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    state = TrainState()
    ckpt_path = out_dir / CHECKPOINT_NAME
    if resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        _check_resume_config(ckpt.train_config, config, ckpt_path)
        state = ckpt.restore(net, optimizer)
        log.info("resuming at step %d", state.global_step)
    if ddp.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / TRAIN_CONFIG_NAME, config.model_dump_json(indent=2) + "\n")
    model: torch.nn.Module = net
    if ddp.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(net, device_ids=ids)
    per_rank = config.batch_size // ddp.world
    part = slice(ddp.rank * per_rank, (ddp.rank + 1) * per_rank)
    loss_fn = make_loss(config, _data_range(run.model_cfg, run.max_value))
    bicubic = _bicubic_scores(run.val_fields, run.model_cfg.network.scale, run.max_value)
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    config_json = config.model_dump_json()
    budget_s = config.minutes * 60 if config.minutes else math.inf
    log.info(
        "%d training fields (%d px at 40x), %d steps of %d crops, device %s",
        len(run.sampler.lr),
        run.sampler.pixels,
        config.steps,
        config.batch_size,
        device,
    )

    def checkpoint() -> None:
        if ddp.main:
            save_checkpoint(ckpt_path, net, optimizer, state, config_json)

    def validate(t_train: float) -> None:
        train_loss = state.loss_sum / max(state.loss_count, 1)
        if ddp.world > 1:  # each rank saw its share of the batch
            t = torch.tensor([train_loss], dtype=torch.float64)
            dist.all_reduce(t)
            train_loss = float(t) / ddp.world
        val_ssim, val_psnr = _validate(net, run.model_cfg, run.val_fields, run.max_value, device)
        metrics = ValMetrics(
            step=state.global_step,
            train_loss=train_loss,
            val_ssim=val_ssim,
            val_psnr=val_psnr,
            lr=optimizer.param_groups[0]["lr"],
            seconds=t_train,
            patches=state.loss_count * config.batch_size,
        )
        improved = _record_validation(state, metrics, config.early_stop_patience)
        if improved and ddp.main:
            save_model(out_dir, net, _with_metrics(run.model_cfg, state, bicubic))
        checkpoint()
        if ddp.main:
            _publish(out_dir, state, metrics, bicubic, writer)
        if progress is not None:
            progress(metrics)
        model.train()

    cancelled = False
    t_steps, n_steps = 0.0, 0
    with _summary_writer(out_dir, ddp.main) as writer:
        bar = tqdm(
            total=config.steps,
            initial=state.global_step,
            desc="train",
            unit="step",
            file=sys.stderr,
            disable=not ddp.main,
            leave=False,
        )
        model.train()
        t_val = time.perf_counter()
        while state.global_step < config.steps and not state.stopped_early:
            frac = _progress(state, config.steps, budget_s, ddp)
            if frac > 1:
                break  # the wall-clock budget is spent
            t0 = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = config.lr * lr_factor(frac, config.warmup)
            x, y = run.sampler.batch(
                config.seed, state.global_step, config.batch_size, config.augment, part
            )
            x, y = x.to(device), y.to(device)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            loss_value = float(train_step(model, optimizer, loss_fn, x, y, amp))
            if not math.isfinite(loss_value):
                raise InputError(
                    f"training diverged at step {state.global_step + 1} (loss {loss_value}); "
                    "lower the learning rate (--lr)"
                )
            dt = time.perf_counter() - t0
            t_steps, n_steps = t_steps + dt, n_steps + 1
            state.loss_sum += loss_value
            state.loss_count += 1
            state.global_step += 1
            state.elapsed_s += dt
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4g}", lr=f"{optimizer.param_groups[0]['lr']:.2g}")
            if state.global_step % config.val_every == 0:
                validate(time.perf_counter() - t_val)
                t_val = time.perf_counter()
            elif state.global_step % config.checkpoint_every == 0:
                checkpoint()
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
        bar.close()
        last_validated = bool(state.history) and state.history[-1]["step"] == state.global_step
        if cancelled:
            checkpoint()
        elif not last_validated:
            validate(time.perf_counter() - t_val)
    history = [ValMetrics(**h) for h in state.history]
    beats = _beats_bicubic(state, bicubic)
    if ddp.main and not cancelled and not beats:
        log.warning(
            "the kept model (step %d: val SSIM %.4f, PSNR %.2f dB) does not beat bicubic on the "
            "validation fields (SSIM %.4f, PSNR %.2f dB); train longer (--steps), fine-tune a "
            "reference model (--init) or check the registration QC",
            state.best_step,
            state.best_val_ssim,
            state.best_val_psnr,
            *bicubic,
        )
    return TrainResult(
        model_dir=out_dir,
        completed=not cancelled,
        stopped_early=state.stopped_early,
        steps=state.global_step,
        best_step=state.best_step,
        best_val_ssim=state.best_val_ssim,
        best_val_psnr=state.best_val_psnr,
        bicubic_val_ssim=bicubic[0],
        bicubic_val_psnr=bicubic[1],
        beats_bicubic=beats,
        steps_per_second=n_steps / t_steps if t_steps > 0 else 0.0,
        history=history,
    )


def _progress(state: TrainState, steps: int, budget_s: float, ddp: _Dist) -> float:
    """Fraction of the budget spent at the end of the next step (above 1: the time is spent).

    The larger of the step and the wall-clock fractions. Under DDP the ranks agree on the
    largest, so all stop at the same step.
    """
    frac = (state.global_step + 1) / steps
    if not math.isfinite(budget_s):
        return frac
    frac = math.inf if state.elapsed_s >= budget_s else max(frac, state.elapsed_s / budget_s)
    if ddp.world > 1:
        t = torch.tensor([frac], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        frac = float(t)
    return frac


def _beats_bicubic(state: TrainState, bicubic: tuple[float, float]) -> bool:
    return state.best_val_ssim > bicubic[0] and state.best_val_psnr > bicubic[1]


def _record_validation(state: TrainState, metrics: ValMetrics, patience: int) -> bool:
    """Record a validation in *state*; return whether it is the best so far (val PSNR)."""
    improved = metrics.val_psnr > state.best_val_psnr
    if improved:
        state.best_val_ssim, state.best_val_psnr = metrics.val_ssim, metrics.val_psnr
        state.best_step, state.bad_validations = metrics.step, 0
    else:
        state.bad_validations += 1
    state.history.append(asdict(metrics))
    state.loss_sum, state.loss_count = 0.0, 0
    if patience and state.bad_validations >= patience:
        log.info("early stop: no val PSNR gain in %d validations", state.bad_validations)
        state.stopped_early = True
    return improved


def _publish(
    out_dir: Path,
    state: TrainState,
    metrics: ValMetrics,
    bicubic: tuple[float, float],
    writer: Any | None,
) -> None:
    """Write metrics.csv and curves.png, log to TensorBoard and the log (main rank only)."""
    _write_metrics_csv(out_dir / METRICS_NAME, state.history)
    plot_curves(out_dir / "curves.png", [ValMetrics(**h) for h in state.history], bicubic)
    if writer is not None:
        for key in ("train_loss", "val_ssim", "val_psnr", "lr"):
            writer.add_scalar(key, getattr(metrics, key), metrics.step)
    log.info(
        "step %d: loss %.4g, val SSIM %.4f PSNR %.2f dB (bicubic %.4f / %.2f)",
        metrics.step,
        metrics.train_loss,
        metrics.val_ssim,
        metrics.val_psnr,
        *bicubic,
    )


def _with_metrics(cfg: ModelConfig, state: TrainState, bicubic: tuple[float, float]) -> ModelConfig:
    metrics: dict[str, Any] = {
        "best_step": state.best_step,
        "val_ssim": state.best_val_ssim,
        "val_psnr": state.best_val_psnr,
        "bicubic_val_ssim": bicubic[0],
        "bicubic_val_psnr": bicubic[1],
        "global_step": state.global_step,
    }
    if not all(math.isfinite(v) for v in metrics.values()):
        raise InputError("training diverged (non-finite metrics); lower the learning rate")
    metrics["beats_bicubic"] = _beats_bicubic(state, bicubic)
    return cfg.model_copy(update={"metrics": metrics})
