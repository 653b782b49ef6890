"""Fixtures shared by the GUI tests: a Qt leak check, a small simulated core, a tiny model.

Imported by ``tests/test_gui_*.py`` (``from gui_fixtures import ...``); not a conftest, so other
areas' tests are unaffected.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QSettings
from PySide6.QtWidgets import QApplication, QMessageBox

from gui.app import load_enhancer
from gui.main_window import MainWindow
from gui.screenshot import tiny_model_dir

__all__ = [
    "isolated_settings",
    "make_window",
    "messages",
    "qt_leak_check",
    "sim_core",
    "tiny_model",
]


def _flush() -> None:
    # deleteLater'd widgets go now; pyqtgraph's parentless menus go with their Python owners
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
    QApplication.processEvents()


def _live_threads() -> set[threading.Thread]:
    # tqdm's process-wide monitor thread starts with the first progress bar and is meant to stay
    return {t for t in threading.enumerate() if type(t).__name__ != "TMonitor"}


@pytest.fixture
def qt_leak_check(qapp: QApplication) -> Iterator[None]:
    """Fail a test that leaves top-level widgets or Python threads behind (ndv-style)."""
    widgets_before = set(QApplication.topLevelWidgets())
    threads_before = _live_threads()
    yield
    _flush()
    leaked_widgets = [w for w in QApplication.topLevelWidgets() if w not in widgets_before]
    leaked_threads = [t for t in _live_threads() - threads_before if t.is_alive()]
    for w in leaked_widgets:
        w.close()
        w.deleteLater()
    assert not leaked_widgets, f"top-level widgets left behind: {leaked_widgets}"
    assert not leaked_threads, f"threads left running: {leaked_threads}"


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point the window's QSettings at a fresh folder: tests never touch a person's settings."""
    folder = tmp_path_factory.mktemp("qsettings")
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    return folder


@pytest.fixture
def sim_core(monkeypatch: pytest.MonkeyPatch):
    """A fresh simulated microscope with a small 96x128 sensor (psygnal core signals)."""
    monkeypatch.setenv("PYMM_SIGNALS_BACKEND", "psygnal")
    from simulators.core import make_core

    return make_core(seed=0, sensor=(96, 128))


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """An untrained tiny scale-2.5 RGB model directory."""
    return tiny_model_dir(tmp_path / "tiny-model")


@pytest.fixture
def messages(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record QMessageBox.warning/critical texts instead of opening dialogs."""
    seen: list[str] = []

    def record(parent: object, title: str, text: str, *args: object) -> QMessageBox.StandardButton:
        seen.append(text)
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "warning", record)
    monkeypatch.setattr(QMessageBox, "critical", record)
    return seen


@pytest.fixture
def make_window(qtbot, sim_core, qt_leak_check: None) -> Iterator[Callable[..., MainWindow]]:
    """Factory of shown main windows on ``sim_core``; all are closed and deleted at the end.

    Tests keep windows in locals only, so that after teardown nothing references them and the
    leak check sees what closing really leaves behind.
    """
    made: list[MainWindow] = []

    def make(model_dir: Path | None = None, core=None) -> MainWindow:
        core = sim_core if core is None else core
        w = MainWindow(core, enhancer=load_enhancer(model_dir), model_dir=model_dir)
        made.append(w)
        w.show()
        qtbot.waitExposed(w)
        return w

    yield make
    for w in made:
        w.close()
        w.deleteLater()
    made.clear()
    _flush()
