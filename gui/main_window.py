"""The deepscope main window: live, acquisition, training and device panels in tabs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMainWindow, QTabWidget, QWidget

from gui.acquisition_controller import AcquisitionController
from gui.acquisition_panel import AcquisitionPanel
from gui.device_panel import DevicePanel
from gui.live_controller import LiveController
from gui.live_panel import LivePanel
from gui.menus import install_menus
from gui.settings import MODEL_DIR, read_geometry, write_geometry, write_path
from gui.training_controller import TrainingController
from gui.training_panel import TrainingPanel

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

    from model.inference.engine import Enhancer

log = logging.getLogger("deepscope.gui")


class MainWindow(QMainWindow):
    """One window for the person at the scope; closing it stops and joins every worker.

    Parameters
    ----------
    core
        The Micro-Manager core, shared by all panels.
    enhancer, model_dir
        An already loaded model (optional) and the directory it came from.
    max_display_px
        Longest side, in screen pixels, at which frames are drawn.
    """

    def __init__(
        self,
        core: CMMCorePlus,
        *,
        enhancer: Enhancer | None = None,
        model_dir: Path | None = None,
        max_display_px: int = 1024,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("deepscope")
        self.core = core
        self.live = LiveController(core, enhancer, model_dir=model_dir, parent=self)
        self.live_panel = LivePanel(self.live, max_display_px=max_display_px)
        self.acquisition = AcquisitionController(core, parent=self)
        self.acquisition_panel = AcquisitionPanel(self.acquisition, before_start=self.live.stop)
        self.acquisition.running_changed.connect(
            lambda running: self.live_panel.set_camera_available(not running)
        )
        self.training = TrainingController(parent=self)
        self.training_panel = TrainingPanel(self.training)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.live_panel, "Live")
        self.tabs.addTab(self.acquisition_panel, "Acquisition")
        self.tabs.addTab(self.training_panel, "Training")
        self.device_panel = DevicePanel(core)
        self.tabs.addTab(self.device_panel, "Devices")
        self.setCentralWidget(self.tabs)
        self.live_panel.record_box.message.connect(self.statusBar().showMessage)
        self.statusBar().addPermanentWidget(self.live_panel.cursor_label)
        self.live.model_changed.connect(self._remember_model)
        self.menu_actions = install_menus(self)
        geometry = read_geometry()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1400, 820)

    @staticmethod
    def _remember_model(model_dir: Path | None) -> None:
        if model_dir is not None:
            write_path(MODEL_DIR, model_dir)

    def shutdown(self) -> None:
        """Stop live mode and every running task, and join their threads."""
        self.live.shutdown()
        self.acquisition.shutdown()
        self.training.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        """Stop all workers and remember the window's geometry before it goes away."""
        write_geometry(self.saveGeometry())
        self.shutdown()
        super().closeEvent(event)
