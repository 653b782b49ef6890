"""A form over the plan's main settings that edits the plan's YAML (the source of truth).

Each field is one key path of the plan. The form shows a valid plan's values
(:meth:`PlanForm.show_plan`) and, when a person edits a field, emits the key path and the new
value; :func:`set_key` writes it into the YAML mapping, which the panel dumps back into the
editor. Comments of the YAML text do not survive an edit through the form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QSpinBox,
    QWidget,
)

if TYPE_CHECKING:
    from acquire.plan import AcquisitionPlan

Key = tuple[str, ...]

#: (row label, [(key path, unit or choices, minimum, maximum, decimals)]) in form order.
ROWS: tuple[tuple[str, tuple[tuple[Key, str, float, float, int], ...]], ...] = (
    (
        "region x, y (um)",
        ((("region", "x_um"), "", -1e6, 1e6, 1), (("region", "y_um"), "", -1e6, 1e6, 1)),
    ),
    (
        "region w, h (um)",
        ((("region", "width_um"), "", 1, 1e5, 1), (("region", "height_um"), "", 1, 1e5, 1)),
    ),
    ("tile overlap", ((("tiles", "overlap"), "", 0, 0.89, 2),)),
    (
        "targets, seed",
        ((("targets", "count"), "", 0, 10_000, 0), (("targets", "seed"), "", 0, 1e9, 0)),
    ),
    ("target margin (um)", ((("targets", "margin_um"), "", 0, 1e4, 1),)),
    (
        "target z: planes, step",
        (
            (("targets", "z", "slices"), "", 1, 200, 0),
            (("targets", "z", "step_um"), "", 0.01, 50, 2),
        ),
    ),
    ("autofocus", ((("autofocus", "mode"), "none|per_field|focus_map", 0, 0, 0),)),
    (
        "autofocus range, step",
        ((("autofocus", "range_um"), "", 0.1, 200, 1), (("autofocus", "step_um"), "", 0.01, 50, 2)),
    ),
)


def get_key(plan: AcquisitionPlan, key: Key) -> Any:
    """The value at *key* of a validated plan."""
    value: Any = plan
    for part in key:
        value = getattr(value, part)
    return value


def set_key(raw: dict[str, Any], key: Key, value: object) -> None:
    """Set *key* in the plan mapping *raw*, creating the nested mappings it needs."""
    node = raw
    for part in key[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[key[-1]] = value


class PlanForm(QWidget):
    """Spin boxes and choices for the plan's region, tiling, targets, z and autofocus."""

    edited = Signal(object, object)  # key path, new value

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.fields: dict[Key, QDoubleSpinBox | QSpinBox | QComboBox] = {}
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        for label, specs in ROWS:
            row = QHBoxLayout()
            for key, choices, lo, hi, decimals in specs:
                widget = self._make(key, choices, lo, hi, decimals)
                self.fields[key] = widget
                row.addWidget(widget)
            form.addRow(label, row)

    def _make(
        self, key: Key, choices: str, lo: float, hi: float, decimals: int
    ) -> QDoubleSpinBox | QSpinBox | QComboBox:
        if choices:
            combo = QComboBox()
            combo.addItems(choices.split("|"))
            combo.activated.connect(lambda _i: self.edited.emit(key, combo.currentText()))
            return combo
        box: QDoubleSpinBox | QSpinBox
        if decimals == 0:
            box = QSpinBox()
            box.setRange(int(lo), int(hi))
        else:
            box = QDoubleSpinBox()
            box.setDecimals(decimals)
            box.setRange(lo, hi)
            box.setSingleStep(10 ** (1 - decimals) if decimals > 1 else 1.0)
        box.setKeyboardTracking(False)  # one edit per finished number, not per keystroke
        box.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
        box.setAccessibleName(".".join(key))
        box.valueChanged.connect(lambda v: self.edited.emit(key, v))
        return box

    def show_plan(self, plan: AcquisitionPlan) -> None:
        """Show *plan*'s values without emitting :attr:`edited`."""
        for key, widget in self.fields.items():
            value = get_key(plan, key)
            widget.blockSignals(True)
            if isinstance(widget, QComboBox):
                widget.setCurrentText(str(value))
            else:
                widget.setValue(value)
            widget.blockSignals(False)
