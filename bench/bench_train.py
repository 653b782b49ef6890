"""Training throughput: crops per second of a full step (crops, forward, loss, backward, Adam).

Uses the real network, crop sampler (flips/rot90) and loss (``l1_ssim`` by default) on random
fields. ``--modes`` compares precisions and memory formats on the same device: ``fp32``,
``bf16`` (autocast), ``cl`` (channels_last), ``bf16_cl``. On CUDA ``train_model`` uses bf16 +
channels_last; on the CPU fp32.

    PYTHONPATH=. python bench/bench_train.py --batch 16 --threads 2 --modes fp32 bf16 cl \
        --out /tmp/bench_train.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from typing import Any

import numpy as np
import torch

from model.config import NetworkConfig, Normalisation
from model.device import resolve_device
from model.network import DeepMicroscopyNet
from model.training.config import TrainConfig
from model.training.data import CropSampler, FieldPair
from model.training.losses import make_loss
from model.training.train import train_step

MODES = ("fp32", "bf16", "cl", "bf16_cl")


def bench(
    batch: int, patch: int, steps: int, warmup: int, device: torch.device, mode: str, loss: str
) -> dict[str, Any]:
    torch.manual_seed(0)
    net = DeepMicroscopyNet(NetworkConfig(global_skip=True)).to(device)
    channels_last = mode.endswith("cl")
    if channels_last:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    fields = [
        FieldPair(
            f"f{i}", rng.random((3, 200, 200), np.float32), rng.random((3, 500, 500), np.float32)
        )
        for i in range(4)
    ]
    sampler = CropSampler(fields, Normalisation.identity(3), 2.5, patch)
    loss_fn = make_loss(TrainConfig(loss=loss), 1.0)  # type: ignore[arg-type]
    amp: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if mode.startswith("bf16"):
        amp = torch.autocast(device.type, dtype=torch.bfloat16)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        x, y = sampler.batch(0, i, batch, augment=True)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        train_step(net, opt, loss_fn, x, y, amp)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "mode": mode,
        "loss": loss,
        "batch": batch,
        "patch": patch,
        "steps": steps,
        "median_step_s": med,
        "min_step_s": min(times),
        "max_step_s": max(times),
        "crops_per_s": batch / med,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[16])
    ap.add_argument("--patch", type=int, default=60)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=["fp32"])
    ap.add_argument("--loss", default="l1_ssim", choices=["mse_grad", "l1", "l1_ssim"])
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    device = resolve_device(args.device)
    meta = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_1min": os.getloadavg()[0],
    }
    results = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for b in args.batch:
            for mode in args.modes:
                r = bench(b, args.patch, args.steps, args.warmup, device, mode, args.loss)
                results.append({"threads": threads, **r})
                print(
                    f"{meta['device_name']}, {threads} thread(s), {mode}: batch {b} patch "
                    f"{args.patch}: median step {r['median_step_s']:.3f} s, "
                    f"{r['crops_per_s']:.1f} crops/s"
                )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"meta": meta, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
