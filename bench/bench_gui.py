"""Cost of drawing one live frame pair in the GUI against handing full frames to pyqtgraph.

A full-sensor 40x frame (2048x2048 RGB uint16) and its enhanced frame (5120x5120 RGB float32,
scale 2.5) are drawn and the window rendered (``grab``), as the event loop would paint it:

* ``gui``: :meth:`gui.live_panel.LivePanel.show_frame`, which draws only the visible part of each
  frame at about one pixel per screen pixel (whole frame in view);
* ``gui zoomed``: the same with the view zoomed on a quarter of the field;
* ``naive``: the full frames passed to two pyqtgraph ``ImageItem`` (with histograms), as a
  viewer without display reduction would do.

The pipeline never waits for the display (the GUI polls ``latest()``); a slower display only
shows fewer frames, and on a shared CPU takes cycles from inference. Medians of ``--repeats``
alternating runs after one warm-up round; prints JSON.

    QT_QPA_PLATFORM=offscreen python bench/bench_gui.py --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sensor", type=int, default=2048)
    args = parser.parse_args()

    import pyqtgraph as pg
    from PySide6.QtGui import QTransform
    from PySide6.QtWidgets import QApplication

    from deepscope.framemeta import FrameMetaReader
    from gui.app import load_enhancer
    from gui.live_controller import LiveController
    from gui.live_panel import LivePanel
    from gui.screenshot import tiny_model_dir
    from live.frames import LiveFrame
    from simulators import make_core

    app = QApplication.instance() or QApplication(sys.argv[:1])
    core = make_core(seed=0, sensor=(args.sensor, args.sensor))
    rng = np.random.default_rng(0)
    n = args.sensor
    raw = rng.integers(0, 4096, size=(n, n, 3), dtype=np.uint16)
    big = int(np.ceil(n * 2.5))
    enhanced = rng.random((big, big, 3), dtype=np.float32) * 4095
    frame = LiveFrame(0, raw, enhanced, 0.0, 0.0, FrameMetaReader(core)())

    with tempfile.TemporaryDirectory() as tmp:  # drawing reads only the model's scale (2.5)
        enhancer = load_enhancer(tiny_model_dir(Path(tmp) / "tiny"))
    controller = LiveController(core, enhancer)
    gui = LivePanel(controller)
    zoomed = LivePanel(controller)
    naive = pg.GraphicsLayoutWidget()
    naive_items = []
    for col, scale in enumerate((1.0, 1 / 2.5)):
        view = naive.addViewBox(row=0, col=2 * col, lockAspect=True, invertY=True)
        item = pg.ImageItem(axisOrder="row-major")
        item.setTransform(QTransform.fromScale(scale, scale))
        view.addItem(item)
        naive.addItem(pg.HistogramLUTItem(image=item, levelMode="mono"), row=0, col=2 * col + 1)
        naive_items.append((view, item))
    widgets = {"gui": gui, "gui zoomed": zoomed, "naive": naive}
    for w in widgets.values():
        w.resize(1500, 800)
        w.show()
    app.processEvents()
    zoomed.show_frame(frame)
    zoomed.raw_pane.view.setRange(xRange=(0, n / 2), yRange=(0, n / 2), padding=0)
    app.processEvents()

    def draw_naive() -> None:
        for (view, item), image in zip(naive_items, (raw, enhanced), strict=True):
            item.setImage(image, autoLevels=True)
            view.autoRange(padding=0)

    draw = {"gui": lambda: gui.show_frame(frame), "gui zoomed": lambda: zoomed.show_frame(frame)}
    draw["naive"] = draw_naive
    times: dict[str, list[float]] = {name: [] for name in widgets}
    for _ in range(args.repeats + 1):  # the first round is a warm-up
        for name, w in widgets.items():
            t0 = time.perf_counter()
            draw[name]()
            w.grab()
            times[name].append(time.perf_counter() - t0)
    medians = {name: 1e3 * statistics.median(t[1:]) for name, t in times.items()}
    result = {
        "what": "draw + render one pair: raw 2048^2 RGB uint16, enhanced 5120^2 RGB float32",
        "median_ms": {k: round(v, 1) for k, v in medians.items()},
        "max_display_fps": {k: round(1e3 / v, 1) for k, v in medians.items()},
        "naive_over_gui": round(medians["naive"] / medians["gui"], 2),
        "naive_over_gui_zoomed": round(medians["naive"] / medians["gui zoomed"], 2),
        "repeats": args.repeats,
        "sensor": n,
        "machine": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    for w in widgets.values():
        w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
