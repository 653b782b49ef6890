"""GUI live mode on the simulator: raw-view and enhanced-view rates while the network runs.

Opens the main window on the simulated microscope (full 2048 sensor, camera ROI ``--roi``
centred), loads a model (``--model DIR``, default the paper's network with random weights: the
cost does not depend on the values), runs live mode and counts, over ``--seconds`` after a
warm-up, the frames each pane drew. Then it moves the stage and measures how long the raw view
takes to show the new position. Run it under Xvfb for a real X server:

    xvfb-run -a python bench/bench_gui_live.py --seconds 20 --png /tmp/gui_live.png

Prints JSON (raw view fps, enhanced view fps, camera and inference fps from the pipeline,
stage-move-to-raw-view delay).

With ``--record DIR`` it then records from the Live tab (as its Record button does) for
``--seconds`` with each recorder of ``--recorders`` (``before``/``template``/``after``, see
``bench/bench_recorder.py``) in turn, into new folders under DIR that are deleted afterwards:
frames recorded, frames lost, the deepest the recording queue got, whether the recording
ended early (queue full) and the raw view's rate meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None, help="model directory")
    p.add_argument("--roi", type=int, default=512, help="square camera ROI edge in pixels")
    p.add_argument("--seconds", type=float, default=20.0, help="measured span")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--exposure-ms", type=float, default=10.0)
    p.add_argument("--png", type=Path, default=None, help="save a picture of the window")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    p.add_argument("--record", type=Path, default=None, help="also record into folders here")
    p.add_argument("--recorders", nargs="+", default=["before", "after"])
    args = p.parse_args()

    import torch
    from PySide6.QtWidgets import QApplication

    from acquire.backends import set_camera_roi
    from acquire.plan import CameraROI
    from gui.app import load_enhancer
    from gui.main_window import MainWindow
    from model.config import ModelConfig, NetworkConfig, Normalisation
    from model.network import DeepMicroscopyNet
    from model.store import save_model
    from simulators import make_core

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            torch.manual_seed(0)
            net_cfg = NetworkConfig(global_skip=True)
            config = ModelConfig(network=net_cfg, normalisation=Normalisation.identity(3, 4095.0))
            model_dir = save_model(Path(tmp) / "paper", DeepMicroscopyNet(net_cfg), config)
        enhancer = load_enhancer(model_dir)
    core = make_core(seed=0)
    set_camera_roi(core, CameraROI(width=args.roi, height=args.roi))  # centred
    core.setExposure(args.exposure_ms)
    window = MainWindow(core, enhancer=enhancer, model_dir=model_dir)
    window.resize(1500, 800)
    window.show()
    panel, live = window.live_panel, window.live

    def pump(seconds: float, until: object = None) -> float:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            app.processEvents()
            if callable(until) and until():
                break
            time.sleep(0.002)
        return time.perf_counter() - t0

    live.start()
    pump(args.warmup, lambda: panel.enhanced_shown >= 1 and panel.frames_shown >= 5)
    pump(args.warmup)
    raw0, enh0, t0 = panel.frames_shown, panel.enhanced_shown, time.perf_counter()
    pump(args.seconds)
    span = time.perf_counter() - t0
    raw_fps = (panel.frames_shown - raw0) / span
    enhanced_fps = (panel.enhanced_shown - enh0) / span
    stats = live._pipeline.stats() if live._pipeline is not None else None
    x0, _ = core.getXYPosition()
    t_move = time.perf_counter()
    live.move_xy(50.0, 0.0)
    moved = lambda: live.current is not None and abs(live.current.meta["x_um"] - x0 - 50) < 1e-6  # noqa: E731
    pump(10.0, moved)
    move_ms = 1e3 * (time.perf_counter() - t_move)
    pump(2.0)  # the simulator renders a new area in about a second
    if args.png is not None:
        window.grab().save(str(args.png))
    recordings = [record(window, pump, args.record, name, args.seconds) for name in args.recorders]
    live.stop()
    result = {
        "what": "GUI live mode: panes' draw rates while the network runs (simulator)",
        "roi": args.roi,
        "seconds": round(span, 2),
        "raw_view_fps": round(raw_fps, 1),
        "enhanced_view_fps": round(enhanced_fps, 2),
        "camera_fps": stats.camera_fps if stats else None,
        "inference_fps": stats.inference_fps if stats else None,
        "latency_p50_ms": stats.latency_p50_ms if stats else None,
        "stage_move_to_raw_view_ms": round(move_ms, 1),
        "enhancer": enhancer.describe() if enhancer else None,
        "recordings": recordings if args.record is not None else None,
        "platform": os.environ.get("QT_QPA_PLATFORM") or "xcb (display)",
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_1min": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    window.close()
    return 0


def record(window: Any, pump: Any, parent: Path | None, name: str, seconds: float) -> dict:
    """Record from the Live tab for *seconds* with recorder variant *name*; delete the frames."""
    if parent is None:
        return {}
    import shutil

    from bench_recorder import variant

    live, panel = window.live, window.live_panel
    statuses: list[Any] = []
    live.record_status.connect(statuses.append)
    deepest, camera_fps = 0, 0.0

    def watch() -> bool:
        nonlocal deepest, camera_fps
        if live._pipeline is not None:
            st = live._pipeline.stats()
            deepest = max(deepest, st.frames_in - st.recorded)
            camera_fps = st.camera_fps
        return live.recording is None  # ended early (queue full)

    with variant(name):
        directory = live.start_recording(parent)
        raw0, t0 = panel.frames_shown, time.perf_counter()
        pump(seconds, watch)
        span = time.perf_counter() - t0
        raw_fps = (panel.frames_shown - raw0) / span
        live.stop_recording()
    live.record_status.disconnect(statuses.append)
    end = statuses[-1]
    files = len(list((directory / "raw").glob("*.ome.tif")))
    shutil.rmtree(directory)
    return {
        "recorder": name,
        "seconds": round(span, 2),
        "recorded": end.recorded,
        "files": files,
        "lost": end.lost,
        "deepest_queue": deepest,
        "recorded_fps": round(end.recorded / span, 1),
        "camera_fps": round(camera_fps, 1),
        "raw_view_fps": round(raw_fps, 1),
        "ended_early": end.error,
    }


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # The results are out; skip interpreter teardown, where Qt objects collected after the
    # window closed can abort this bench with "Fatal Python error: none_dealloc".
    os._exit(code)
