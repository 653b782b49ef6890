"""Grab a picture of the main window running live mode on the simulated microscope.

``python -m gui.screenshot OUT.png [--model DIR] [--seconds 3]`` (run under Xvfb for a real
X server, e.g. ``xvfb-run -a``). Without ``--model`` an untrained tiny network is used, which
with its global skip connection is exactly a bicubic upsample.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from model.config import ModelConfig, NetworkConfig, Normalisation
from model.network import DeepMicroscopyNet
from model.store import save_model


def tiny_model_dir(directory: Path, *, channels: int = 3, white_level: float = 4095.0) -> Path:
    """Save an untrained, small network (scale 2.5) into *directory* and return it."""
    net_cfg = NetworkConfig(
        channels=channels, base_channels=8, num_blocks=2, alpha=4, global_skip=True
    )
    config = ModelConfig(
        network=net_cfg,
        normalisation=Normalisation.identity(channels, white_level),
        provenance={"note": "untrained tiny network for GUI screenshots and tests"},
    )
    return save_model(directory, DeepMicroscopyNet(net_cfg), config)


def main(argv: list[str] | None = None) -> int:
    """Open the window on the simulator, run live for a while, save a screenshot."""
    parser = argparse.ArgumentParser(prog="python -m gui.screenshot", description=__doc__)
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--model", type=Path, help="model directory (default: tiny untrained)")
    parser.add_argument("--seconds", type=float, default=3.0, help="live time before the grab")
    parser.add_argument("--roi", type=int, default=512, help="camera ROI side in pixels")
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from gui.app import load_enhancer, open_core
    from gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    core = open_core(simulate=True)
    core.setROI(0, 0, args.roi, args.roi)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or tiny_model_dir(Path(tmp) / "tiny-model")
        window = MainWindow(core, enhancer=load_enhancer(model_dir), model_dir=model_dir)
        window.resize(1500, 800)
        window.show()
        window.live.start()
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(str(args.out))
        window.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
