"""Grab a picture of the main window working on the simulated microscope.

``python -m gui.screenshot OUT.png [--tab live|acquisition|training|devices] [--model DIR]`` (run
under Xvfb for a real X server, e.g. ``xvfb-run -a``). ``live`` runs live mode for ``--seconds``
(with ``--record``, recording into a temporary folder) with the line profile across the frame
and points the cursor at the raw view's centre; ``acquisition`` previews, then runs a small
paired plan (the oil pause answered yes); ``training`` registers a small simulated dataset and
trains a tiny network for ``--steps``; ``devices`` shows the Devices tab. Without ``--model``
live mode uses an untrained tiny network, which with its global skip connection is exactly a
bicubic upsample.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QApplication

from gui.main_window import MainWindow
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


def _wait(done: Callable[[], bool], seconds: float) -> None:
    end = time.monotonic() + seconds
    while not done() and time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def _live(window: MainWindow, seconds: float, record_into: Path | None) -> None:
    panel = window.live_panel
    if record_into is None:
        window.live.start()
    else:
        panel.record_box.folder_field.edit.setText(str(record_into))
        panel.record_box.toggle()
    _wait(lambda: window.live.current is not None, 30)
    shape = window.live.current.raw.shape if window.live.current is not None else (0, 0)
    panel.profile_button.setChecked(True)
    panel.profile_tool.set_ends((0.2 * shape[1], 0.6 * shape[0]), (0.8 * shape[1], 0.4 * shape[0]))
    _wait(lambda: False, seconds)
    centre = QPointF(shape[1] / 2 + 0.5, shape[0] / 2 + 0.5)
    panel.show_cursor(panel.raw_pane.view.mapViewToScene(centre))


def _true_profile(window: MainWindow, path: Path) -> Path:
    from acquire.profile import MicroscopeProfile
    from deepscope.formats.dataset import Calibration
    from simulators import microscope_of

    truth = microscope_of(window.core).objectives
    lo, hi = truth["40x"], truth["100x"]
    MicroscopeProfile(
        calibration=Calibration(
            dx_um=hi.offset_x_um - lo.offset_x_um,
            dy_um=hi.offset_y_um - lo.offset_y_um,
            dz_um=hi.parfocal_z_um - lo.parfocal_z_um,
        ),
        calibrated_objectives=("40x", "100x"),
    ).to_file(path)
    return path


def _acquisition(window: MainWindow, tmp: Path) -> None:
    panel, ctrl = window.acquisition_panel, window.acquisition
    window.tabs.setCurrentWidget(panel)
    ctrl.oil_requested.disconnect(panel.ask_for_oil)  # no one to answer the dialog
    ctrl.oil_requested.connect(lambda: ctrl.answer_oil(True))
    # the panel opens with the documented example plan (autofocus, flat field): run it as is,
    # with the profile a calibration would measure (here: the simulator's true offsets)
    panel.profile_field.edit.setText(str(_true_profile(window, tmp / "profile.yaml")))
    panel.out_field.edit.setText(str(tmp / "dataset"))
    laid_out: list[object] = []
    ctrl.layout_ready.connect(laid_out.append)
    panel.preview_plan()
    _wait(lambda: bool(laid_out), 120)
    panel.run()
    _wait(lambda: ctrl.summary is not None, 300)
    _wait(lambda: False, 1.0)  # the last field's preview
    panel.pictures.setCurrentIndex(0)  # where the fields went, over the overview


def _training(window: MainWindow, tmp: Path, steps: int) -> None:
    from simulators.dataset import make_simulated_dataset

    make_simulated_dataset(tmp / "ds", seed=3, grid=(2, 2), sensor_px=128, n_targets=8, z_slices=1)
    panel, ctrl = window.training_panel, window.training
    window.tabs.setCurrentWidget(panel)
    panel.dataset_field.edit.setText(str(tmp / "ds"))
    panel.pairs_field.edit.setText(str(tmp / "pairs"))
    panel.model_field.edit.setText(str(tmp / "model"))
    panel.steps_spin.setValue(steps)
    panel.val_spin.setValue(max(1, steps // 8))
    panel.batch_spin.setValue(16)
    panel.lr_spin.setValue(1e-3)
    panel.patch_spin.setValue(32)
    panel.blocks_spin.setValue(2)
    panel.width_spin.setValue(8)
    panel.start()
    _wait(lambda: ctrl.outcome is not None or not ctrl.running, 600)
    _wait(lambda: False, 0.5)


def main(argv: list[str] | None = None) -> int:
    """Open the window on the simulator, run one panel for a while, save a screenshot."""
    parser = argparse.ArgumentParser(prog="python -m gui.screenshot", description=__doc__)
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument(
        "--tab",
        choices=("live", "acquisition", "training", "devices"),
        default="live",
        help="panel to show",
    )
    parser.add_argument("--model", type=Path, help="model directory (default: tiny untrained)")
    parser.add_argument("--seconds", type=float, default=3.0, help="live time before the grab")
    parser.add_argument("--roi", type=int, default=512, help="live camera ROI side in pixels")
    parser.add_argument("--record", action="store_true", help="record while live (live tab)")
    parser.add_argument("--steps", type=int, default=160, help="training steps (training tab)")
    args = parser.parse_args(argv)

    from acquire.backends import ScopeChoice
    from gui.app import load_enhancer, open_core
    from simulators import make_core

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("deepscope")
    core = open_core(ScopeChoice(simulator=make_core))
    core.setROI(0, 0, args.roi, args.roi)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or tiny_model_dir(Path(tmp) / "tiny-model")
        window = MainWindow(core, enhancer=load_enhancer(model_dir), model_dir=model_dir)
        window.resize(1500, 800)
        window.show()
        if args.tab == "live":
            _live(window, args.seconds, Path(tmp) / "recordings" if args.record else None)
        elif args.tab == "acquisition":
            _acquisition(window, Path(tmp))
        elif args.tab == "training":
            _training(window, Path(tmp), args.steps)
        else:
            window.tabs.setCurrentWidget(window.device_panel)
            _wait(lambda: False, 1.0)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(str(args.out))
        window.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
