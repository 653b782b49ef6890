"""Acquisition panel: edit a plan, run or resume it, follow fields, answer the oil pause."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6.QtGui import QBrush, QColor, QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from deepscope.errors import DeepscopeError, InputError
from gui.acquisition_controller import AcquisitionController, FieldPreview, parse_plan
from gui.display import auto_levels, display_factor, downsample
from gui.training_panel import PathField

if TYPE_CHECKING:
    from acquire.dataset import FieldRecord
    from acquire.plan import AcquisitionPlan
    from acquire.profile import MicroscopeProfile
    from acquire.runner import AcquisitionProgress, AcquisitionSummary

#: The documented example plan (README), shown when the panel opens.
EXAMPLE_PLAN_PATH = Path(__file__).resolve().parents[1] / "examples" / "plan_small.yaml"


def example_plan() -> str:
    """Text of the example plan, or a comment saying where it should be."""
    try:
        return EXAMPLE_PLAN_PATH.read_text(encoding="utf-8")
    except OSError:
        return f"# {EXAMPLE_PLAN_PATH} not found; load a plan (Load...)\n"


OIL_MESSAGE = (
    "The 40x tiles are done. Put a drop of immersion oil on the slide for the 100x objective, "
    "then press OK to take the 100x fields (Cancel stops; the dataset can be resumed)."
)


class AcquisitionPanel(QWidget):
    """The view of :class:`~gui.acquisition_controller.AcquisitionController`.

    *before_start* is called before a run starts (the main window stops live mode there).
    """

    def __init__(
        self,
        controller: AcquisitionController,
        *,
        before_start: Callable[[], None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        layout = QHBoxLayout(self)

        left = QVBoxLayout()
        layout.addLayout(left, stretch=1)
        self.editor = QPlainTextEdit()
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.editor.setPlainText(example_plan())
        left.addWidget(QLabel("Plan (YAML)"))
        left.addWidget(self.editor, stretch=1)
        file_row = QHBoxLayout()
        for text, slot in (
            ("Load...", self.load_plan),
            ("Save...", self.save_plan),
            ("Check", self.check_plan),
        ):
            b = QPushButton(text)
            b.clicked.connect(slot)
            file_row.addWidget(b)
        left.addLayout(file_row)
        form = QFormLayout()
        self.out_field = PathField("Dataset output directory")
        self.resume_box = QCheckBox("resume an interrupted dataset")
        self.profile_field = PathField(
            "Microscope profile (from 'deepscope calibrate')",
            file_filter="Profiles (*.yaml *.yml *.json)",
        )
        self.profile_field.edit.setPlaceholderText("none: uncalibrated (offsets 0)")
        form.addRow("output", self.out_field)
        form.addRow("profile", self.profile_field)
        form.addRow("", self.resume_box)
        left.addLayout(form)
        run_row = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(controller.cancel)
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        left.addLayout(run_row)
        self.progress = QProgressBar()
        self.phase_label = QLabel("idle")
        self.phase_label.setWordWrap(True)
        left.addWidget(self.progress)
        left.addWidget(self.phase_label)

        right = QVBoxLayout()
        layout.addLayout(right, stretch=2)
        self.field_label = QLabel("current field: -")
        right.addWidget(self.field_label)
        self.graphics = pg.GraphicsLayoutWidget()
        self.view = self.graphics.addViewBox(lockAspect=True, invertY=True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        right.addWidget(self.graphics, stretch=3)
        self.field_list = QListWidget()
        right.addWidget(QLabel("fields (failed in red)"))
        right.addWidget(self.field_list, stretch=1)

        controller.progressed.connect(self.show_progress)
        controller.fields_changed.connect(self.show_fields)
        controller.field_preview.connect(self.show_preview)
        controller.oil_requested.connect(self.ask_for_oil)
        controller.finished.connect(self.show_summary)
        controller.failed.connect(self._on_failed)
        controller.running_changed.connect(self._set_running)
        self._before_start = before_start

    # -- plan text ---------------------------------------------------------------------------
    def plan(self) -> AcquisitionPlan:
        """The plan in the editor; InputError when it is not valid."""
        return parse_plan(self.editor.toPlainText())

    def load_plan(self) -> None:
        """Read a YAML/JSON plan file into the editor."""
        path, _ = QFileDialog.getOpenFileName(self, "Load plan", "", "Plans (*.yaml *.yml *.json)")
        if path:
            try:
                self.editor.setPlainText(Path(path).read_text(encoding="utf-8"))
            except OSError as exc:
                self._warn(f"cannot read {path}: {exc.strerror}")

    def save_plan(self) -> None:
        """Validate the editor's plan and write it as YAML or JSON."""
        try:
            plan = self.plan()
        except DeepscopeError as exc:
            self._warn(str(exc))
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save plan", "", "Plans (*.yaml *.json)")
        if path:
            try:
                plan.to_file(path)
            except OSError as exc:
                self._warn(f"cannot write {path}: {exc.strerror}")

    def check_plan(self) -> bool:
        """Validate the plan; show the problem or a short summary."""
        try:
            plan = self.plan()
        except DeepscopeError as exc:
            self._warn(str(exc))
            return False
        r = plan.region
        self.phase_label.setText(
            f"plan '{plan.name}' is valid: region {r.width_um:g} x {r.height_um:g} um at "
            f"({r.x_um:g}, {r.y_um:g})"
        )
        return True

    # -- running -----------------------------------------------------------------------------
    def run(self) -> None:
        """Start (or resume) the acquisition from the editor's plan."""
        try:
            plan = self.plan()
            out_dir = self.out_field.path()
            if out_dir is None:
                raise InputError("choose an output directory for the dataset")
            profile = self.profile()
            if self._before_start is not None:
                self._before_start()  # e.g. stop live mode: one user of the camera at a time
            self.controller.start(
                plan, out_dir, resume=self.resume_box.isChecked(), profile=profile
            )
        except DeepscopeError as exc:
            self._warn(str(exc))
            return
        self.field_list.clear()
        self.progress.setValue(0)
        if profile is None or not profile.calibrated:
            from acquire.profile import UNCALIBRATED

            self.phase_label.setText(f"starting; warning: {UNCALIBRATED}")
        else:
            self.phase_label.setText("starting")

    def profile(self) -> MicroscopeProfile | None:
        """The chosen microscope profile (None: none chosen); InputError for a bad file."""
        from acquire.profile import MicroscopeProfile

        path = self.profile_field.path()
        return None if path is None else MicroscopeProfile.from_file(path)

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def show_progress(self, p: AcquisitionProgress) -> None:
        """Progress bar and phase text."""
        self.progress.setRange(0, max(p.total, 1))
        self.progress.setValue(p.finished)
        field = f", field {p.field_id}" if p.field_id else ""
        self.phase_label.setText(
            f"{p.phase}: {p.finished}/{p.total} fields, {p.failed} failed{field}"
        )

    def show_fields(self, records: list[FieldRecord]) -> None:
        """List every field; failed ones in red with the reason as tooltip."""
        self.field_list.clear()
        for r in records:
            item = QListWidgetItem(f"{r.field_id}  {r.role} {r.objective}  {r.status}")
            if r.status == "failed":
                item.setForeground(QBrush(QColor("red")))
                item.setToolTip(r.reason or "failed")
            self.field_list.addItem(item)
        self.field_list.scrollToBottom()

    def show_preview(self, preview: FieldPreview) -> None:
        """Draw the newest acquired field."""
        image = preview.image
        shown = downsample(image, display_factor(image.shape, 1024))
        if shown.ndim == 3 and shown.shape[-1] == 1:
            shown = shown[..., 0]
        self.image.setImage(shown, autoLevels=False, levels=auto_levels(shown))
        self.view.autoRange(padding=0.0)
        self.field_label.setText(
            f"current field: {preview.field_id} ({preview.pixel_size_um:.3f} um/px)"
        )

    def ask_for_oil(self) -> None:
        """The oil pause as a dialog; the answer goes back to the waiting worker."""
        answer = QMessageBox.question(
            self,
            "Immersion oil",
            OIL_MESSAGE,
            QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel,
        )
        self.controller.answer_oil(answer == QMessageBox.StandardButton.Ok)

    def show_summary(self, s: AcquisitionSummary) -> None:
        """Final counts; failures stay marked in the list."""
        state = "cancelled" if s.cancelled else "done"
        self.phase_label.setText(
            f"{state}: {s.done} done, {s.failed} failed, {s.skipped} already done, "
            f"{s.elapsed_s:.1f} s -> {s.out_dir}"
        )

    def _on_failed(self, message: str) -> None:
        self.phase_label.setText("failed")
        self._warn(message)

    def _warn(self, message: str) -> None:
        QMessageBox.warning(self, "deepscope", message)
