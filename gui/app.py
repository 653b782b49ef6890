"""Start the Qt application with the main window on a simulated or real microscope."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from deepscope.errors import HardwareError

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

    from acquire.backends import ScopeChoice
    from acquire.plan import CameraROI
    from model.inference.engine import Enhancer

log = logging.getLogger("deepscope.gui")


#: pymmcore-plus picks Qt signals for a core made while a QApplication runs; those would deliver
#: frame and MDA callbacks on the GUI thread (and need qtpy). deepscope's acquisition and live
#: code expect them on the acquisition thread, so the GUI asks for psygnal unless told otherwise.
SIGNALS_BACKEND_VAR = "PYMM_SIGNALS_BACKEND"
#: Qt platforms that need no display server.
HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc")


def check_display() -> None:
    """Raise one line when Qt would find no display (instead of Qt aborting the process)."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or platform.split(":")[0] in HEADLESS_PLATFORMS:
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    raise HardwareError(
        "no display for the window (DISPLAY and WAYLAND_DISPLAY are unset); run it on a desktop, "
        "under 'xvfb-run deepscope gui', or use 'deepscope live --headless'"
    )


def open_core(choice: ScopeChoice) -> CMMCorePlus:
    """The chosen microscope's core, with psygnal signals (see :data:`SIGNALS_BACKEND_VAR`)."""
    from acquire import backends

    os.environ.setdefault(SIGNALS_BACKEND_VAR, "psygnal")
    return backends.open_core(choice)


def load_enhancer(model_dir: Path | None) -> Enhancer | None:
    """Load *model_dir* for inference (None: no model); InputError for an invalid directory."""
    if model_dir is None:
        return None
    from model.inference.engine import Enhancer

    return Enhancer.from_dir(model_dir, device="auto")


def run_app(
    choice: ScopeChoice,
    *,
    model_dir: Path | None = None,
    roi: CameraROI | None = None,
) -> int:
    """Open the window on the chosen microscope and run the Qt event loop; return the exit code.

    Everything that can fail (display, model, microscope, ROI) is checked before Qt starts, so a
    failure is one line, never an abort. *roi* sets the camera ROI before the window opens.
    """
    from acquire.backends import set_camera_roi

    enhancer = load_enhancer(model_dir)  # a bad model directory fails before the scope starts
    core = open_core(choice)
    set_camera_roi(core, roi)
    check_display()
    from PySide6.QtWidgets import QApplication

    from gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(core, enhancer=enhancer, model_dir=model_dir)
    window.show()
    code = app.exec()
    log.debug("event loop ended with %d", code)
    window.deleteLater()
    return int(code)
