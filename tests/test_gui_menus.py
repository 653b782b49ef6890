"""Menu bar, shortcuts and the settings the window remembers (in a temporary QSettings folder)."""

from pathlib import Path

from gui_fixtures import *  # noqa: F403 (fixtures: make_window, messages, sim_core, ...)
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from deepscope import __version__
from gui.settings import MODEL_DIR, RECORD_DIR, app_settings, read_path

WAIT_MS = 30_000


def activate(qtbot, window):
    with qtbot.waitActive(window):
        window.activateWindow()


def test_settings_live_in_the_tests_folder(isolated_settings):
    assert Path(app_settings().fileName()).is_relative_to(isolated_settings)


def test_menus_and_shortcuts_drive_the_window(qtbot, make_window):
    window = make_window()
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles == ["&File", "&View", "&Help"]
    file_menu = window.menuBar().actions()[0].menu()
    assert [a.text() for a in file_menu.actions() if a.text()] == [
        "&Open model...",
        "Open &dataset...",
        "Open &profile...",
        "&Save snap...",
        "&Quit",
    ]
    activate(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_F5)
    assert window.live.running
    assert window.live_panel.live_button.text() == "Stop live"
    qtbot.waitUntil(lambda: window.live_panel.frames_shown >= 1, timeout=WAIT_MS)
    qtbot.keyClick(window, Qt.Key.Key_F5)
    assert not window.live.running
    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentWidget() is window.training_panel
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    window.live.start()
    qtbot.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    assert not window.isVisible()
    assert not window.live.running  # quitting stops live mode and joins its threads


def test_f5_does_nothing_while_the_camera_is_busy(qtbot, make_window):
    window = make_window()
    window.live_panel.set_camera_available(False)  # an acquisition holds the camera
    activate(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_F5)
    assert not window.live.running


def test_open_model_remembers_the_last_model_and_record_folder(
    qtbot, make_window, tiny_model, tmp_path, monkeypatch
):
    starts = []

    def choose(parent, caption, start=""):
        starts.append(start)
        return str(tiny_model)

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", choose)
    window = make_window()
    activate(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
    assert window.live.model_dir == tiny_model
    assert read_path(MODEL_DIR) == tiny_model
    box = window.live_panel.record_box
    box.folder_field.edit.setText(str(tmp_path / "recs"))
    box.toggle()
    assert window.live.recording is not None
    box.toggle()
    window.live.stop()
    assert read_path(RECORD_DIR) == tmp_path / "recs"
    window.close()

    again = make_window()
    again.menu_actions["open model"].trigger()
    assert starts == ["", str(tiny_model)]  # the second dialog opens at the last model
    assert again.live_panel.record_box.folder_field.edit.text() == str(tmp_path / "recs")


def test_window_geometry_is_restored(qtbot, make_window):
    window = make_window()
    assert (window.width(), window.height()) == (1400, 820)  # nothing remembered yet
    window.resize(760, 560)  # within the offscreen screen (800x600): restoring clamps to it
    qtbot.waitUntil(lambda: window.width() < 1400 and window.height() < 820)
    size = (window.width(), window.height())
    window.close()
    again = make_window()
    assert (again.width(), again.height()) == size


def test_save_snap_asks_for_a_folder_and_saves_the_pair(
    qtbot, make_window, tiny_model, tmp_path, monkeypatch
):
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a: str(tmp_path / "snaps"))
    window = make_window(tiny_model)
    window.live.snap()
    qtbot.waitUntil(lambda: window.live.current is not None, timeout=WAIT_MS)
    activate(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    saved = sorted(p.name for p in (tmp_path / "snaps").iterdir())
    assert len(saved) == 2
    assert saved[0].endswith("_enhanced.ome.tif")
    assert saved[1].endswith("_raw.ome.tif")


def test_about_shows_the_versions_deepscope_info_prints(make_window, monkeypatch):
    shown = []
    monkeypatch.setattr(QMessageBox, "about", lambda parent, title, text: shown.append(text))
    window = make_window()
    window.menu_actions["about"].trigger()
    assert len(shown) == 1
    assert f"deepscope      {__version__}" in shown[0]
    for name in ("pymmcore-plus", "torch", "PySide6", "pyqtgraph", "mm adapters"):
        assert name in shown[0]


def test_open_dataset_and_profile_from_the_file_menu(
    qtbot, make_window, tmp_path, monkeypatch, messages
):
    from PySide6.QtWidgets import QFileDialog

    from acquire.profile import MicroscopeProfile
    from simulators.dataset import make_simulated_dataset

    make_simulated_dataset(tmp_path / "ds", seed=3, grid=(2, 2), sensor_px=64, n_targets=1)
    MicroscopeProfile().to_file(tmp_path / "profile.yaml")
    window = make_window()
    panel = window.acquisition_panel
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "ds"))
    monkeypatch.setattr(
        QFileDialog, "getOpenFileName", lambda *a, **k: (str(tmp_path / "profile.yaml"), "")
    )
    window.menu_actions["open dataset"].trigger()
    assert panel.out_field.path() == tmp_path / "ds"
    assert panel.resume_box.isChecked()
    assert window.training_panel.dataset_field.path() == tmp_path / "ds"
    assert window.tabs.currentWidget() is panel
    assert panel.field_list.count() == 5  # 4 tiles and 1 target, read from the manifest
    assert "5 fields done" in window.statusBar().currentMessage()
    window.menu_actions["open profile"].trigger()
    assert panel.profile_field.path() == tmp_path / "profile.yaml"
    assert "not calibrated" in window.statusBar().currentMessage()
    assert messages == []
    # a folder that is no dataset, a file that is no profile: one line each, nothing changes
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.yaml").write_text("objectives: 3\n")
    monkeypatch.setattr(
        QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "empty")
    )
    monkeypatch.setattr(
        QFileDialog, "getOpenFileName", lambda *a, **k: (str(tmp_path / "bad.yaml"), "")
    )
    window.menu_actions["open dataset"].trigger()
    window.menu_actions["open profile"].trigger()
    assert len(messages) == 2
    assert "not a deepscope dataset" in messages[0]
    assert panel.out_field.path() == tmp_path / "ds"
    assert panel.profile_field.path() == tmp_path / "profile.yaml"
