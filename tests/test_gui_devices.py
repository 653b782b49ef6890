"""The Devices tab: pymmcore-widgets drive the simulated core, with the network shut."""

import socket

import pytest
from gui_fixtures import *  # noqa: F403 (fixtures: make_window, messages, sim_core, ...)


@pytest.fixture
def no_network(monkeypatch):
    """Refuse every outgoing connection; record the attempts."""
    tried = []

    def refuse(self, address, *args):
        tried.append(address)
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))
    return tried


def test_device_widgets_drive_the_core_offline(qtbot, no_network, make_window, messages):
    window = make_window()
    core = window.core
    panel = window.device_panel
    window.tabs.setCurrentWidget(panel)
    qtbot.wait(50)
    # exposure: the widget sets the camera's exposure
    panel.exposure.spinBox.setValue(7.5)
    panel.exposure.spinBox.editingFinished.emit()
    qtbot.waitUntil(lambda: core.getExposure() == pytest.approx(7.5), timeout=5000)
    # presets: the Objective group is listed and its combo switches the turret
    table = panel.presets.table_wdg
    groups = [table.item(r, 0).text() for r in range(table.rowCount())]
    assert "Objective" in groups
    combo = table.cellWidget(groups.index("Objective"), 1)
    combo.setValue("100x")
    qtbot.waitUntil(lambda: core.getCurrentConfig("Objective") == "100x", timeout=5000)
    assert core.getPixelSizeUm() == pytest.approx(0.074)
    # properties: a row per property of every device, whose editor sets it
    props = panel.properties
    labels = [props.item(r, 0).text() for r in range(props.rowCount())]
    assert "Camera-Exposure" in labels
    row = labels.index("Camera-Exposure")
    props.cellWidget(row, 1).setValue(12.0)
    qtbot.waitUntil(lambda: core.getExposure() == pytest.approx(12.0), timeout=5000)
    assert no_network == []
    assert messages == []


def test_property_sliders_show_their_numbers_and_presets_have_one_frame(qtbot, make_window):
    from PySide6.QtWidgets import QAbstractSpinBox, QGroupBox, QSlider

    window = make_window()
    panel = window.device_panel
    window.tabs.setCurrentWidget(panel)
    qtbot.wait(50)
    props = panel.properties
    labels = [props.item(r, 0).text() for r in range(props.rowCount())]
    editor = props.cellWidget(labels.index("Scope-SensorWidth"), 1)
    assert editor.findChildren(QSlider)  # a ranged property: slider + number
    (spin,) = editor.findChildren(QAbstractSpinBox)
    assert float(spin.text()) == float(window.core.getProperty("Scope", "SensorWidth"))
    field = spin.lineEdit()  # Qt 6.12 laid this out 1 px wide: the number was invisible
    assert field.isVisible()
    assert field.width() >= field.fontMetrics().horizontalAdvance(spin.text())
    assert panel.presets.title() == "Presets"
    assert not isinstance(panel.presets.parentWidget(), QGroupBox)
