"""Devices tab: pymmcore-widgets' exposure, config-group presets and device-property browser.

The field's own widgets on the same core the rest of the window drives. Only widgets that work
offline are used: pymmcore-widgets' StageWidget and PropertyBrowser fetch their icons from the
network (iconify), so the stage moves through the Live tab and the properties are a plain table
of pymmcore-widgets' ``PropertyWidget`` per property; ``tests/test_gui_devices.py`` checks the
tab with the network shut.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QAbstractItemView,
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
        for title, widget in (("Exposure", self.exposure), ("Presets", self.presets)):
            box = QGroupBox(title)
            QVBoxLayout(box).addWidget(widget)
            column.addWidget(box, stretch=1 if widget is self.presets else 0)
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
        table.setCellWidget(r, 1, PropertyWidget(device, name, mmcore=core))
    return table
