"""Live-mode inference benchmark: eager fp32 vs the optimized Enhancer, per frame size.

Measures one frame at a time, as live mode does (raw uint16 RGB frame on the host in, enhanced
float32 frame on the host out, transfers included): fps and p50/p99 latency, with the device
named, plus the network's FLOPs and bytes per frame and the H100 roofline floor they imply.

    python bench/bench_live.py --sizes 512 1024 2048 --frames 5 --threads 1
    python bench/bench_live.py --device cuda --frames 50 --compile   # on a GPU machine

The network is the paper's (random weights; the cost does not depend on the values).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from model.config import ModelConfig, Normalisation
from model.inference.cost import H100_BF16_FLOPS, H100_HBM_BYTES_PER_S, frame_cost
from model.inference.engine import Enhancer, resolve_device
from model.network import DeepMicroscopyNet

Run = Callable[[np.ndarray], np.ndarray]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def eager_runner(net: DeepMicroscopyNet, device: torch.device, max_value: float) -> Run:
    """The naive path: fp32, NCHW, blocking copies, no tiling."""
    net = net.to(device).eval()

    def run(frame: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(frame.astype(np.float32) / max_value).permute(2, 0, 1)[None]
        with torch.inference_mode():
            y = net(x.to(device))
        return y[0].permute(1, 2, 0).cpu().numpy() * max_value

    return run


def measure(run: Run, frame: np.ndarray, frames: int, warmup: int, device: torch.device) -> dict:
    for _ in range(warmup):
        run(frame)
    sync(device)
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        run(frame)
        sync(device)
        times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1e3
    return {
        "frames": frames,
        "fps": 1e3 / float(statistics.median(ms)),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
    }


def measure_overlapped(enhancer: Enhancer, frame: np.ndarray, frames: int, warmup: int) -> dict:
    """Throughput with frame n+1 started before frame n is collected (live mode on CUDA)."""
    for _ in range(warmup):
        enhancer.enhance(frame)
    sync(enhancer.device)
    t0 = time.perf_counter()
    inflight = enhancer.enhance_async(frame)
    for _ in range(frames - 1):
        nxt = enhancer.enhance_async(frame)
        inflight()
        inflight = nxt
    inflight()
    sync(enhancer.device)
    return {"frames": frames, "fps": frames / (time.perf_counter() - t0)}


def camera_check(enhancer: Enhancer, seconds: float, roi: int, exposure_ms: float) -> dict:
    """Live mode on the simulator with and without the model: the camera rate must not drop."""
    from acquire.live.pipeline import LivePipeline
    from simulators import make_core

    out = {}
    for name, model in (("no_model", None), ("model", enhancer)):
        core = make_core(seed=0)
        core.setROI(0, 0, roi, roi)
        core.setExposure(exposure_ms)
        pipeline = LivePipeline(core, model)
        pipeline.start()
        time.sleep(seconds)
        out[name] = pipeline.stop().as_dict()
        print("camera check", name, out[name], file=sys.stderr, flush=True)
    return {"roi": roi, "exposure_ms": exposure_ms, "seconds": seconds, **out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    p.add_argument("--frames", type=int, default=5, help="timed frames per size and variant")
    p.add_argument(
        "--frames-2048", type=int, default=None, help="timed frames at >= 2048 (slow on CPU)"
    )
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--compile", action="store_true", help="also torch.compile the optimized path")
    p.add_argument(
        "--camera-check",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also run live mode on the simulator (512 ROI, 20 ms) with and without the model",
    )
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False  # eager fp32 is true fp32
    max_value = 4095.0
    config = ModelConfig(normalisation=Normalisation.identity(3, max_value))
    net = DeepMicroscopyNet(config.network)
    rng = np.random.default_rng(0)
    precision = "bf16" if device.type == "cuda" else "fp32"
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": str(device),
        "device_name": device_name,
        "machine": platform.machine(),
        "torch": torch.__version__,
        "threads": args.threads,
        "sizes": [],
    }
    for size in args.sizes:
        n = args.frames_2048 if (size >= 2048 and args.frames_2048) else args.frames
        frame = rng.integers(0, int(max_value) + 1, (size, size, 3), dtype=np.uint16)
        cost = frame_cost(net, size, size, element_bytes=2)
        variants: dict[str, Run] = {"eager_fp32": eager_runner(net, device, max_value)}
        opt = Enhancer(net, config, device=device, precision=precision, tile=size, cuda_graphs=True)
        variants[f"optimized_{precision}_channels_last"] = opt.enhance
        if device.type == "cpu":
            cpu_bf16 = Enhancer(net, config, device=device, precision="bf16", tile=size)
            variants["optimized_bf16_channels_last"] = cpu_bf16.enhance
        if args.compile:
            comp = Enhancer(
                net, config, device=device, precision=precision, tile=size, compile=True
            )
            variants[f"compiled_{precision}"] = comp.enhance
        row: dict = {"size": size, "cost": cost.as_dict(), "variants": {}}
        for name, run in variants.items():
            row["variants"][name] = measure(run, frame, n, args.warmup, device)
            print(size, name, row["variants"][name], file=sys.stderr, flush=True)
        if opt.overlaps:
            name = f"optimized_{precision}_overlapped"
            row["variants"][name] = measure_overlapped(opt, frame, n, args.warmup)
            print(size, name, row["variants"][name], file=sys.stderr, flush=True)
        eager_fps = row["variants"]["eager_fp32"]["fps"]
        row["speedup_vs_eager"] = {
            k: v["fps"] / eager_fps for k, v in row["variants"].items() if k != "eager_fp32"
        }
        row["achieved_tflops"] = {
            k: cost.flops * v["fps"] / 1e12 for k, v in row["variants"].items()
        }
        results["sizes"].append(row)
    if args.camera_check > 0:
        live = Enhancer(net, config, device=device, precision="bf16")
        results["camera_check"] = camera_check(live, args.camera_check, 512, 20.0)
    results["h100_peaks"] = {"bf16_flops": H100_BF16_FLOPS, "hbm_bytes_per_s": H100_HBM_BYTES_PER_S}
    text = json.dumps(results, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
