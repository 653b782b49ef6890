"""Devices tab: pymmcore-widgets' exposure, config-group presets and device-property browser.

The field's own widgets on the same core the rest of the window drives. Only widgets that work
offline are used: pymmcore-widgets' StageWidget and PropertyBrowser fetch their icons from the
network (iconify), so the stage moves through the Live tab and the properties are a plain table
of pymmcore-widgets' ``PropertyWidget`` per property; ``tests/test_gui_devices.py`` checks the
tab with the network shut.

Under Qt 6.12 a style sheet with ``border: none`` on a spin box without buttons lays its text
field out 1 px wide, so the number beside each of pymmcore-widgets' property sliders did not
show; :func:`show_slider_numbers` gives those spin boxes zero-width buttons instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractSpinBox,
    QGroupBox,
    QHeaderView,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus


class DevicePanel(QWidget):
    """Exposure and presets above the property browser of every loaded device."""

    def __init__(self, core: CMMCorePlus, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from pymmcore_widgets import ExposureWidget, GroupPresetTableWidget

        self.exposure = ExposureWidget(mmcore=core)
        self.presets = GroupPresetTableWidget(mmcore=core)
        self.properties = property_table(core)
        top = QWidget()
        column = QVBoxLayout(top)
        column.setContentsMargins(0, 0, 0, 0)
        box = QGroupBox("Exposure")
        QVBoxLayout(box).addWidget(self.exposure)
        column.addWidget(box)
        self.presets.setTitle("Presets")  # a QGroupBox already: no second frame around it
        column.addWidget(self.presets, stretch=1)
        splitter = QSplitter()
        splitter.addWidget(top)
        box = QGroupBox("Device properties")
        QVBoxLayout(box).addWidget(self.properties)
        splitter.addWidget(box)
        splitter.setStretchFactor(1, 2)
        QVBoxLayout(self).addWidget(splitter)


def property_table(core: CMMCorePlus) -> QTableWidget:
    """A row per property of every loaded device: ``Device-Property`` and its editor."""
    from pymmcore_widgets import PropertyWidget

    rows = [
        (device, name)
        for device in core.getLoadedDevices()
        for name in core.getDevicePropertyNames(device)
    ]
    table = QTableWidget(len(rows), 2)
    table.setHorizontalHeaderLabels(["property", "value"])
    table.verticalHeader().setVisible(False)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    for r, (device, name) in enumerate(rows):
        table.setItem(r, 0, QTableWidgetItem(f"{device}-{name}"))
        editor = PropertyWidget(device, name, mmcore=core)
        show_slider_numbers(editor)
        table.setCellWidget(r, 1, editor)
    return table


#: The borderless look pymmcore-widgets gives a slider's number, with zero-width buttons.
_SLIDER_NUMBER_STYLE = (
    "QAbstractSpinBox { border: none; background: transparent; } "
    "QAbstractSpinBox::up-button, QAbstractSpinBox::down-button { width: 0px; border: none; }"
)


def show_slider_numbers(editor: QWidget) -> None:
    """Make the number beside a property slider in *editor* visible (see the module notes)."""
    for spin in editor.findChildren(QAbstractSpinBox):
        if spin.buttonSymbols() == QAbstractSpinBox.ButtonSymbols.NoButtons:
            spin.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.UpDownArrows)
            spin.setStyleSheet(_SLIDER_NUMBER_STYLE)
