"""Training throughput: patches per second of a full step (forward, loss, backward, Adam).

Uses the real network, loss and batch assembly on random 60x60 -> 150x150 patches. On CUDA it
runs as ``train_model`` does (bf16 autocast, channels_last) and records the GPU name.

    PYTHONPATH=. python bench/bench_train.py --batch 16 64 --threads 1 2 --out /tmp/bench_train.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
from typing import Any

import torch

from model.config import NetworkConfig
from model.network import DeepMicroscopyNet
from model.training.data import augment_codes, make_batch
from model.training.train import dlm_loss


def bench(batch: int, patch: int, steps: int, warmup: int, device: torch.device) -> dict[str, Any]:
    torch.manual_seed(0)
    net = DeepMicroscopyNet(NetworkConfig(global_skip=True)).to(device)
    cuda = device.type == "cuda"
    if cuda:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        torch.backends.cudnn.benchmark = True
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    hp = patch * 5 // 2
    lr_p, hr_p = torch.rand(batch * 2, 3, patch, patch), torch.rand(batch * 2, 3, hp, hp)
    codes = augment_codes(batch * 2, 0, 0, augment=True)
    amp: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if cuda:
        amp = torch.autocast("cuda", dtype=torch.bfloat16)
    times = []
    for i in range(warmup + steps):
        idx = torch.randperm(batch * 2)[:batch]
        t0 = time.perf_counter()
        x, y = make_batch(lr_p, hr_p, idx, codes)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        with amp:
            pred = net(x)
        loss = dlm_loss(pred.float(), y, 1e-3)
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "batch": batch,
        "patch": patch,
        "steps": steps,
        "median_step_s": med,
        "min_step_s": min(times),
        "max_step_s": max(times),
        "patches_per_s": batch / med,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--patch", type=int, default=60)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    meta = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    results = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for b in args.batch:
            r = {"threads": threads, **bench(b, args.patch, args.steps, args.warmup, device)}
            results.append(r)
            print(
                f"{meta['device_name']}, {threads} thread(s): batch {b} patch {args.patch}: "
                f"median step {r['median_step_s']:.3f} s, {r['patches_per_s']:.1f} patches/s"
            )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"meta": meta, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
