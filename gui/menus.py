"""The main window's menu bar: File, View and Help, with the standard shortcuts.

File: Open model... (Ctrl+O), Open dataset..., Open profile..., Save snap... (Ctrl+S),
Quit (Ctrl+Q). View: Live on/off (F5) and
the tabs (Ctrl+1..3). Help: About, with the versions ``deepscope info`` prints.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from deepscope.errors import DeepscopeError
from deepscope.info import collect, text_lines

if TYPE_CHECKING:
    from gui.live_panel import LivePanel
    from gui.main_window import MainWindow


def about_text() -> str:
    """The About box: what deepscope is and the versions, devices and adapters in use."""
    lines = html.escape("\n".join(text_lines(collect())))
    return (
        "<p><b>deepscope</b>: 40x live enhancement, paired acquisition and training "
        "on Micro-Manager microscopes.</p>"
        f"<pre>{lines}</pre>"
    )


def save_snap(panel: LivePanel) -> list[Path]:
    """Ask for a folder, then save the current raw and enhanced frames there."""
    start = str(panel.save_dir or "")
    chosen = QFileDialog.getExistingDirectory(panel, "Save the current frames into", start)
    if not chosen:
        return []
    panel.save_dir = Path(chosen)
    return panel.save_pair()


def open_dataset(window: MainWindow, directory: Path) -> bool:
    """Use dataset *directory* in the Acquisition tab (to resume it) and the Training tab.

    Its fields are listed; a directory that is not a dataset shows one line and changes nothing.
    """
    from deepscope.formats.dataset import open_dataset as read_dataset

    try:
        dataset = read_dataset(directory)
    except DeepscopeError as exc:
        QMessageBox.warning(window, "deepscope", str(exc))
        return False
    panel = window.acquisition_panel
    panel.out_field.edit.setText(str(directory))
    panel.resume_box.setChecked(True)
    window.training_panel.dataset_field.edit.setText(str(directory))
    window.acquisition.out_dir = Path(directory)
    window.acquisition.refresh_fields()
    window.tabs.setCurrentWidget(panel)
    done = sum(r.status == "done" for r in dataset.records)
    window.statusBar().showMessage(f"dataset {directory}: {done} fields done; Run resumes it")
    return True


def open_profile(window: MainWindow, path: Path) -> bool:
    """Use microscope profile *path* for acquisitions; a bad file shows one line."""
    from acquire.profile import MicroscopeProfile

    try:
        profile = MicroscopeProfile.from_file(path)
    except DeepscopeError as exc:
        QMessageBox.warning(window, "deepscope", str(exc))
        return False
    window.acquisition_panel.profile_field.edit.setText(str(path))
    state = "calibrated" if profile.calibrated else "not calibrated"
    window.statusBar().showMessage(f"profile {path} ({state}) used for acquisitions")
    return True


def _ask_dataset(window: MainWindow) -> None:
    chosen = QFileDialog.getExistingDirectory(window, "Open a dataset directory")
    if chosen:
        open_dataset(window, Path(chosen))


def _ask_profile(window: MainWindow) -> None:
    chosen, _ = QFileDialog.getOpenFileName(
        window, "Open a microscope profile", "", "Profiles (*.yaml *.yml *.json)"
    )
    if chosen:
        open_profile(window, Path(chosen))


def _show_tab(window: MainWindow, index: int) -> Callable[[], None]:
    return lambda: window.tabs.setCurrentIndex(index)


def _add(
    menu: QMenu,
    text: str,
    slot: Callable[[], object],
    shortcut: QKeySequence | None = None,
) -> QAction:
    action = QAction(text, menu)
    if shortcut is not None:
        action.setShortcut(shortcut)
    action.triggered.connect(lambda _checked=False: slot())
    menu.addAction(action)
    return action


def install_menus(window: MainWindow) -> dict[str, QAction]:
    """Add the menus to *window*; return their actions by name (for tests and tool tips)."""
    bar = window.menuBar()
    panel = window.live_panel
    key = QKeySequence
    file_menu = bar.addMenu("&File")
    actions = {
        "open model": _add(
            file_menu, "&Open model...", panel.choose_model, key(key.StandardKey.Open)
        ),
        "open dataset": _add(file_menu, "Open &dataset...", lambda: _ask_dataset(window)),
        "open profile": _add(file_menu, "Open &profile...", lambda: _ask_profile(window)),
        "save snap": _add(
            file_menu, "&Save snap...", lambda: save_snap(panel), key(key.StandardKey.Save)
        ),
    }
    file_menu.addSeparator()
    actions["quit"] = _add(file_menu, "&Quit", window.close, key("Ctrl+Q"))
    view_menu = bar.addMenu("&View")
    actions["live"] = _add(view_menu, "&Live on/off", panel.toggle_live, key("F5"))
    view_menu.addSeparator()
    for i in range(window.tabs.count()):
        name = window.tabs.tabText(i)
        actions[f"{name.lower()} tab"] = _add(
            view_menu, f"{name} tab", _show_tab(window, i), key(f"Ctrl+{i + 1}")
        )
    help_menu = bar.addMenu("&Help")
    actions["about"] = _add(
        help_menu,
        "&About deepscope",
        lambda: QMessageBox.about(window, "About deepscope", about_text()),
    )
    return actions
