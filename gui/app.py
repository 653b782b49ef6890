"""Start the Qt application with the main window on a simulated or real microscope."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from deepscope.errors import InputError

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

    from model.inference.engine import Enhancer

log = logging.getLogger("deepscope.gui")


#: pymmcore-plus picks Qt signals for a core made while a QApplication runs; those would deliver
#: frame and MDA callbacks on the GUI thread (and need qtpy). deepscope's acquisition and live
#: code expect them on the acquisition thread, so the GUI asks for psygnal unless told otherwise.
SIGNALS_BACKEND_VAR = "PYMM_SIGNALS_BACKEND"


def open_core(*, simulate: bool, mm_config: Path | None = None, seed: int = 0) -> CMMCorePlus:
    """The simulated microscope, or a Micro-Manager core loaded from *mm_config*."""
    os.environ.setdefault(SIGNALS_BACKEND_VAR, "psygnal")
    if simulate:
        from simulators import make_core

        return make_core(seed=seed)
    if mm_config is None:
        raise InputError("no microscope chosen; pass --simulate or --mm-config FILE")
    if not mm_config.is_file():
        raise InputError(f"Micro-Manager configuration {mm_config} does not exist")
    from pymmcore_plus import CMMCorePlus

    core = CMMCorePlus()
    core.loadSystemConfiguration(str(mm_config))
    return core


def load_enhancer(model_dir: Path | None) -> Enhancer | None:
    """Load *model_dir* for inference (None: no model); InputError for an invalid directory."""
    if model_dir is None:
        return None
    from model.inference.engine import Enhancer

    return Enhancer.from_dir(model_dir, device="auto")


def run_app(
    *,
    simulate: bool,
    mm_config: Path | None = None,
    model_dir: Path | None = None,
    seed: int = 0,
    roi: tuple[int, ...] | None = None,
) -> int:
    """Open the window and run the Qt event loop until it closes; return the exit code.

    *roi* ``(x, y, w, h)`` sets the camera ROI before the window opens.
    """
    if not simulate and mm_config is None:
        raise InputError("no microscope chosen; pass --simulate or --mm-config FILE")
    enhancer = load_enhancer(model_dir)  # a bad model directory fails before the scope starts
    core = open_core(simulate=simulate, mm_config=mm_config, seed=seed)
    if roi is not None:
        from acquire.backends import set_camera_roi

        set_camera_roi(core, roi)
    from PySide6.QtWidgets import QApplication

    from gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(core, enhancer=enhancer, model_dir=model_dir)
    window.show()
    code = app.exec()
    log.debug("event loop ended with %d", code)
    window.deleteLater()
    return int(code)
