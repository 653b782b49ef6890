import threading

import pytest
from dlm_pairs import write_pairs
from gui_fixtures import *  # noqa: F403 (fixtures: make_window, messages, sim_core, ...)
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableWidgetItem

WAIT_MS = 120_000


def fill_form(panel, pairs, model_dir, *, steps, val_every=1, dataset=None):
    panel.register_box.setChecked(dataset is not None)
    if dataset is not None:
        panel.dataset_field.edit.setText(str(dataset))
    panel.pairs_field.edit.setText(str(pairs))
    panel.model_field.edit.setText(str(model_dir))
    panel.steps_spin.setValue(steps)
    panel.val_spin.setValue(val_every)
    panel.batch_spin.setValue(12)
    panel.lr_spin.setValue(1e-3)
    panel.patch_spin.setValue(24)
    panel.blocks_spin.setValue(2)
    panel.width_spin.setValue(8)
    panel.device_combo.setCurrentText("cpu")


def test_cancel_stops_training(qtbot, make_window, tmp_path, messages):
    pairs = write_pairs(tmp_path / "pairs", n_train=4, n_val=1, n_test=1)
    window = make_window()
    panel, ctrl = window.training_panel, window.training
    fill_form(panel, pairs, tmp_path / "model", steps=500)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(ctrl.history) >= 1, timeout=WAIT_MS)
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not ctrl.running, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.phase_label.text() == "cancelled", timeout=WAIT_MS)
    assert len(ctrl.history) < 500
    assert panel.table.rowCount() == 0
    assert messages == []


def test_missing_directories_show_message(qtbot, make_window, tmp_path, messages):
    window = make_window()
    panel = window.training_panel
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert len(messages) == 1
    assert "pairs directory" in messages[0]
    fill_form(panel, tmp_path / "nothing-here", tmp_path / "model", steps=1)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert "does not exist" in messages[1]
    assert not window.training.running


def test_registration_training_curves_and_evaluation_table(qtbot, make_window, tmp_path, messages):
    from simulators.dataset import make_simulated_dataset

    make_simulated_dataset(
        tmp_path / "ds", seed=3, grid=(2, 2), sensor_px=128, n_targets=6, z_slices=1
    )
    window = make_window()
    panel, ctrl = window.training_panel, window.training
    fill_form(
        panel, tmp_path / "pairs", tmp_path / "model", steps=4, val_every=2, dataset=tmp_path / "ds"
    )
    panel.patch_spin.setValue(48)
    steps = []
    ctrl.registration_progress.connect(lambda done, total: steps.append((done, total)))
    phases = []
    ctrl.phase_changed.connect(phases.append)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert not panel.start_button.isEnabled()
    qtbot.waitUntil(lambda: ctrl.outcome is not None, timeout=WAIT_MS)
    assert messages == []
    assert phases == ["registering", "training", "evaluating", "done"]
    assert steps[-1][0] == steps[-1][1] > 0
    assert (tmp_path / "pairs" / "pairs.json").is_file()
    assert (tmp_path / "model" / "model.safetensors").is_file()
    # live curves: one point per validation, the values the trainer reported
    hist = ctrl.history
    assert [m.step for m in hist] == [2, 4]
    xs, ys = panel.loss_curve.getData()
    assert list(xs) == [2, 4]
    assert list(ys) == pytest.approx([m.train_loss for m in hist])
    _, ssim = panel.ssim_curve.getData()
    assert list(ssim) == pytest.approx([m.val_ssim for m in hist])
    # evaluation table on the test fields
    report = ctrl.outcome.report
    from model.training.evaluate import METHODS

    assert panel.table.rowCount() == len(METHODS)
    methods = [panel.table.item(i, 0).text() for i in range(len(METHODS))]
    assert methods == list(METHODS)
    assert {"bicubic", "gaussian", "wiener", "richardson_lucy", "network"} <= set(methods)
    row = methods.index("network")
    assert float(panel.table.item(row, 1).text()) == pytest.approx(
        report.mean["network_ssim"], abs=1e-4
    )
    assert panel.start_button.isEnabled()
    assert panel.progress.value() == panel.progress.maximum()


def test_results_table_shows_every_header_and_value_in_full(qtbot, make_window):
    window = make_window()
    window.tabs.setCurrentWidget(window.training_panel)
    table = window.training_panel.table
    header = table.horizontalHeader()

    def fits() -> bool:
        return (
            all(
                header.sectionSize(col) >= header.sectionSizeFromContents(col).width()
                and header.sectionSize(col) >= table.sizeHintForColumn(col)
                for col in range(table.columnCount())
            )
            and 0 < header.length() <= table.viewport().width()  # no column cut at the edge
            and table.horizontalScrollBar().maximum() == 0
        )

    qtbot.waitUntil(fits, timeout=2000)  # before any result: "method (test fields)" in full
    table.setRowCount(1)
    for col, text in enumerate(("richardson_lucy (a long method name)", "0.8123", "31.42")):
        table.setItem(0, col, QTableWidgetItem(text))
    qtbot.waitUntil(fits, timeout=2000)


def test_cancel_stops_registration_after_the_current_field(qtbot, make_window, tmp_path, messages):
    from simulators.dataset import make_simulated_dataset

    make_simulated_dataset(
        tmp_path / "ds", seed=3, grid=(2, 2), sensor_px=128, n_targets=6, z_slices=1
    )
    window = make_window()
    panel, ctrl = window.training_panel, window.training
    fill_form(panel, tmp_path / "pairs", tmp_path / "model", steps=4, dataset=tmp_path / "ds")
    steps = []
    clicked = threading.Event()

    def hold_worker(done, total):  # worker thread: wait until the click below has landed
        steps.append(done)
        if len(steps) == 1:
            assert clicked.wait(WAIT_MS / 1000)

    def cancel_at_first(done, total):  # GUI thread
        if done == 1:
            qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
            clicked.set()

    ctrl.registration_progress.connect(cancel_at_first)  # queued first, then the worker waits
    ctrl.registration_progress.connect(hold_worker, Qt.ConnectionType.DirectConnection)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not ctrl.running, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.phase_label.text() == "cancelled", timeout=WAIT_MS)
    # Cancel clicked while the first field's progress was being reported: no second field
    assert steps == [1]
    assert not (tmp_path / "pairs" / "pairs.json").exists()
    assert not (tmp_path / "model").exists()
    assert messages == []
