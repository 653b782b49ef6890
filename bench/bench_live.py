"""Live-mode inference benchmark: the engine per frame, as live mode drives it.

Two measurements:

``--host-overhead`` (any machine, meant for the CPU): host work per frame outside the network.
The network is replaced by a stand-in that only resamples (nearest, to the output size), and the
time spent in the engine's device work (``model.inference.engine.DEVICE_WORK``: upload,
normalisation, network, blending, casts, view reduction, downloads; queued on a GPU, executed
inline on the CPU) is timed (the same clock as the wall time; the engine's profiler ranges are
timed instead of recorded) and subtracted from each frame's wall time. What
is left is what the host must do per frame on any device: staging the camera frame, Python
orchestration, host allocations. Wall time includes time the process waits for a core, so on a
loaded machine the minimum over frames is the better estimate; both are reported, with the
calling thread's CPU time outside the device work (``host_cpu_ms``: immune to waiting).

Default (meant for a GPU): frames of ``--sizes`` through the paper's network (random weights)
for each precision, CUDA graphs on/off and whole-frame vs tiled; a live frame goes in as uint16
RGB and a 1024 px view comes out (``--output full`` downloads the full frame as uint16). Reports
fps (two frames in flight, as the live worker runs), p50/p99 latency (one frame at a time), and
achieved TFLOP/s against the roofline of :mod:`model.inference.cost`.

Third, ``--soak S``: live mode through the real pipeline (:class:`LivePipeline`) fed by a
replayed 2048x2048 camera (:class:`live.sources.ReplaySource`) at ``--fps``, then
optionally ``--record-seconds`` with every raw frame recorded: camera blocks, drops, latency,
recorded frames lost, memory growth.

    python bench/bench_live.py --host-overhead --size 2048 --frames 10
    python bench/bench_live.py --device cuda --sizes 2048 --frames 200 --out live.json
    python bench/bench_live.py --device cuda --soak 60 --fps 100 --record-seconds 10 \
        --record-dir /dev/shm --out soak.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from model.config import ModelConfig, Normalisation
from model.device import resolve_device
from model.inference import engine
from model.inference.cost import H100_BF16_FLOPS, H100_HBM_BYTES_PER_S, device_peaks, frame_cost
from model.inference.engine import DEVICE_WORK, Enhancer
from model.inference.view import ViewRequest
from model.network import DeepMicroscopyNet

MAX_VALUE = 4095.0


def machine() -> dict[str, Any]:
    """Where and when: for the JSON results."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_1min": os.getloadavg()[0],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def paper_model() -> tuple[DeepMicroscopyNet, ModelConfig]:
    torch.manual_seed(0)
    config = ModelConfig(normalisation=Normalisation.identity(3, MAX_VALUE))
    return DeepMicroscopyNet(config.network), config


def camera_frame(size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, int(MAX_VALUE) + 1, (size, size, 3), dtype=np.uint16)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stand_in(enhancer: Enhancer) -> None:
    """Replace the enhancer's network by a resampling to the output size (no convolutions)."""
    net = enhancer.net

    def resample(x: torch.Tensor) -> torch.Tensor:
        size = net.output_size(x.shape[-2], x.shape[-1])
        return F.interpolate(x, size=size, mode="nearest")

    net.forward = resample  # type: ignore[method-assign]


class DeviceClock:
    """Stands in for the engine's ``record_function``: adds up the time in its ranges."""

    def __init__(self) -> None:
        self.spent = 0.0  # wall seconds
        self.spent_cpu = 0.0  # CPU seconds of the calling thread

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            if name == DEVICE_WORK:
                self.spent += time.perf_counter() - t0
                self.spent_cpu += time.thread_time() - c0


@contextlib.contextmanager
def device_clock() -> Iterator[DeviceClock]:
    """Time the engine's device-work ranges with the clock the wall time uses."""
    clock = DeviceClock()
    saved = engine.record_function
    engine.record_function = clock  # type: ignore[assignment]
    try:
        yield clock
    finally:
        engine.record_function = saved


def host_overhead(args: argparse.Namespace) -> dict[str, Any]:
    """Host ms per frame outside the device work, per engine mode, with the stand-in network."""
    net, config = paper_model()
    frame = camera_frame(args.size)
    view = ViewRequest(0, 0, args.size, args.size, 1024)
    modes = {
        "whole_frame_view": {"tile": args.size, "full": False, "view": view},
        "tiled_1024_view": {"tile": 1024, "full": False, "view": view},
        "whole_frame_full_uint16": {"tile": args.size, "full": True, "view": None},
    }
    rows: dict[str, Any] = {}
    for name, mode in modes.items():
        enh = Enhancer(net, config, device=args.device, precision="fp32", tile=mode["tile"])
        stand_in(enh)

        def run(enh: Enhancer = enh, mode: dict[str, Any] = mode) -> None:
            enh.enhance_async(frame, full=mode["full"], view=mode["view"], dtype=np.uint16)()

        for _ in range(args.warmup):
            run()
        sync(enh.device)
        wall_ms, device_ms, host_cpu_ms = [], [], []
        with device_clock() as clock:
            for _ in range(args.frames):
                clock.spent = clock.spent_cpu = 0.0
                t0, c0 = time.perf_counter(), time.thread_time()
                run()
                sync(enh.device)
                wall_ms.append(1e3 * (time.perf_counter() - t0))
                device_ms.append(1e3 * clock.spent)
                host_cpu_ms.append(1e3 * (time.thread_time() - c0 - clock.spent_cpu))
        host_ms = np.asarray(wall_ms) - np.asarray(device_ms)
        rows[name] = {
            "tiles": len(enh._plans[next(iter(enh._plans))].tiles),
            "wall_ms_median": round(float(np.median(wall_ms)), 2),
            "device_work_ms_median": round(float(np.median(device_ms)), 2),
            "host_ms_median": round(float(np.median(host_ms)), 2),
            "host_ms_min": round(float(host_ms.min()), 2),
            "host_ms_max": round(float(host_ms.max()), 2),
            "host_cpu_ms_median": round(float(np.median(host_cpu_ms)), 2),
        }
        print(name, rows[name], file=sys.stderr, flush=True)
    return {
        "what": "host work per frame outside the network (stand-in network: nearest resample)",
        "size": args.size,
        "frames": args.frames,
        "device": args.device,
        "target_host_ms": 10.0,
        "modes": rows,
        **machine(),
    }


def measure(enhancer: Enhancer, frame: np.ndarray, kw: dict[str, Any], frames: int) -> dict:
    """Latency one frame at a time, then throughput with two frames in flight."""
    for _ in range(3):  # warm-up: buffers, cudnn autotuning, graph capture
        enhancer.enhance_async(frame, **kw)()
    sync(enhancer.device)
    lat = []
    for _ in range(frames):
        t0 = time.perf_counter()
        enhancer.enhance_async(frame, **kw)()
        lat.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    inflight = enhancer.enhance_async(frame, **kw)
    for _ in range(frames - 1):
        nxt = enhancer.enhance_async(frame, **kw)
        inflight()
        inflight = nxt
    inflight()
    sync(enhancer.device)
    wall = time.perf_counter() - t0
    ms = 1e3 * np.asarray(lat)
    return {
        "frames": frames,
        "fps": frames / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
    }


def live_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    net, config = paper_model()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peaks = device_peaks(name) or (H100_BF16_FLOPS, H100_HBM_BYTES_PER_S)
    results: dict[str, Any] = {
        "device": str(device),
        "device_name": name,
        "peaks": {"bf16_flops": peaks[0], "bytes_per_s": peaks[1]},
        "output": args.output,
        "sizes": [],
        **machine(),
    }
    precisions = args.precisions or (["bf16", "fp16"] if device.type == "cuda" else ["fp32"])
    graphs = [False, True] if device.type == "cuda" else [False]
    for size in args.sizes:
        frame = camera_frame(size)
        cost = frame_cost(net, size, size, element_bytes=2)
        floor_s = cost.floor_s(*peaks)
        kw: dict[str, Any] = {"dtype": np.uint16}
        if args.output == "view":
            kw.update(full=False, view=ViewRequest(0, 0, size, size, 1024))
        row: dict[str, Any] = {"size": size, "cost": cost.as_dict(), "floor_ms": 1e3 * floor_s}
        variants: dict[str, Any] = {}
        for precision in precisions:
            for g in graphs:
                for tiling, tile in (("whole", None), ("tiled", args.tile)):
                    key = f"{precision}_{'graphs' if g else 'eager'}_{tiling}"
                    enh = Enhancer(
                        net, config, device=device, precision=precision, tile=tile, cuda_graphs=g
                    )
                    try:
                        res = measure(enh, frame, kw, args.frames)
                    except torch.OutOfMemoryError as exc:
                        res = {"error": f"out of memory: {exc}"}
                    else:
                        res["tile"] = enh.tile_for(size, size)
                        res["achieved_tflops"] = cost.flops * res["fps"] / 1e12
                        res["x_floor"] = (1.0 / res["fps"]) / floor_s
                    variants[key] = res
                    print(size, key, res, file=sys.stderr, flush=True)
                    del enh
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
        row["variants"] = variants
        results["sizes"].append(row)
    return results


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def soak(args: argparse.Namespace) -> dict[str, Any]:
    """Live mode through the real pipeline, fed by a replayed camera at ``--fps``.

    The display path (a 1024 px view, no full-resolution download) runs for ``--soak``
    seconds; then, with ``--record-seconds``, every raw frame is recorded for that long (to
    ``--record-dir``) and the files written are counted against the frames offered.
    """
    import tempfile

    from deepscope.framemeta import FrameMetaReader
    from live.pipeline import LivePipeline
    from live.sources import ReplaySource
    from simulators import make_core

    device = resolve_device(args.device)
    net, config = paper_model()
    enhancer = Enhancer(net, config, device=device, cuda_graphs=device.type == "cuda")
    frames = [camera_frame(args.size) + i for i in range(4)]  # distinct frames, same shape
    core = make_core(seed=0, sensor=(args.size, args.size))
    meta = FrameMetaReader(core)()  # the replayed frames carry the simulator's state
    phases: dict[str, Any] = {}
    plan = [("display", args.soak, False)]
    if args.record_seconds > 0:
        plan.append(("record", args.record_seconds, True))
    for name, seconds, record in plan:
        with tempfile.TemporaryDirectory(dir=args.record_dir) as tmp:
            record_dir = Path(tmp) / "rec" if record else None
            pipe = LivePipeline(
                core,
                enhancer,
                camera=False,
                full_output=False,
                record_dir=record_dir,
                record_budget_mb=args.record_budget_mb,
            )
            pipe.set_view(ViewRequest(0, 0, args.size, args.size, 1024))
            pipe.start()
            source = ReplaySource(frames, args.fps, pipe.submit, meta)
            rss0 = rss_mb()
            source.start()
            time.sleep(seconds)
            source.stop()
            try:
                stats = pipe.stop(timeout=120.0).as_dict()
                error = None
            except Exception as exc:  # a recording overflow is a result here
                stats, error = pipe.stats().as_dict(), f"{type(exc).__name__}: {exc}"
            written = len(list((record_dir / "raw").glob("*.ome.tif"))) if record_dir else None
        phases[name] = {
            "seconds": seconds,
            "replay_fps_target": args.fps,
            "frames_offered": source.sent,
            "camera_blocked": source.blocked,
            "max_submit_ms": round(source.max_submit_ms, 3),
            "max_replay_lag_ms": round(source.max_lag_ms, 3),
            "replay_error": None if source.error is None else repr(source.error),
            "pipeline_error": error,
            "rss_mb_growth": round(rss_mb() - rss0, 1),
            "frames_written": written,
            "recorded_frames_lost": None if written is None else source.sent - written,
            **stats,
        }
        print(name, phases[name], file=sys.stderr, flush=True)
    return {"size": args.size, "enhancer": enhancer.describe(), "phases": phases, **machine()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host-overhead", action="store_true", help="the stand-in host measurement")
    p.add_argument("--size", type=int, default=2048, help="frame edge for --host-overhead")
    p.add_argument("--sizes", type=int, nargs="+", default=[2048])
    p.add_argument("--frames", type=int, default=10, help="timed frames per variant")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--precisions", nargs="+", default=None, help="default: bf16 fp16 on CUDA")
    p.add_argument("--tile", type=int, default=1024, help="tile edge of the tiled variants")
    p.add_argument("--output", choices=["view", "full"], default="view")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    p.add_argument("--soak", type=float, default=0.0, metavar="S", help="replayed live soak")
    p.add_argument("--fps", type=float, default=100.0, help="replay rate of --soak")
    p.add_argument("--record-seconds", type=float, default=0.0, help="then record this long")
    p.add_argument("--record-dir", type=Path, default=None, help="where --soak records")
    p.add_argument("--record-budget-mb", type=float, default=8192.0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.host_overhead:
        args.device = str(resolve_device(args.device))
        results = host_overhead(args)
    elif args.soak > 0:
        results = soak(args)
    else:
        results = live_benchmark(args)
    text = json.dumps(results, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
