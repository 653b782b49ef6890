"""Acquisition panel: edit a plan (YAML or form), preview it, run or resume it, follow fields."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyqtgraph as pg
import yaml
from PySide6.QtCore import QRectF
from PySide6.QtGui import QBrush, QColor, QFontDatabase, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGraphicsRectItem,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from deepscope.errors import DeepscopeError, InputError
from gui.acquisition_controller import AcquisitionController, FieldPreview, parse_plan
from gui.display import auto_levels, downsample
from gui.plan_form import Key, PlanForm, set_key
from gui.training_panel import PathField
from model.inference.view import display_factor

if TYPE_CHECKING:
    from acquire.plan import AcquisitionPlan
    from acquire.profile import MicroscopeProfile
    from acquire.runner import AcquisitionProgress, AcquisitionSummary
    from deepscope.formats.dataset import FieldRecord
    from gui.plan_preview import PlanLayout

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


def format_eta(seconds: float) -> str:
    """A remaining time as ``1 h 05 min``, ``4 min 10 s`` or ``12 s``."""
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


class AcquisitionPanel(QWidget):
    """The view of :class:`~gui.acquisition_controller.AcquisitionController`.

    The YAML editor holds the plan; the form above it shows the plan's main settings and
    writes an edit back into the YAML. "Preview" draws the tiles (yellow) and target fields
    (cyan) over quick snaps of the region.

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
        self.form = PlanForm()
        self.form.edited.connect(self._on_form_edited)
        self._syncing = False
        self.editor.textChanged.connect(self._on_text_changed)
        self.editor.setPlainText(example_plan())
        form_box = QGroupBox("Plan settings (edit the YAML below)")
        QVBoxLayout(form_box).addWidget(self.form)
        left.addWidget(form_box)
        left.addWidget(QLabel("Plan (YAML)"))
        left.addWidget(self.editor, stretch=1)
        file_row = QHBoxLayout()
        self.preview_button = QPushButton("Preview")
        self.preview_button.setToolTip("snap the region quickly and draw where the fields go")
        for b, slot in (
            (QPushButton("Load..."), self.load_plan),
            (QPushButton("Save..."), self.save_plan),
            (QPushButton("Check"), self.check_plan),
            (self.preview_button, self.preview_plan),
        ):
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
        self.pictures = QTabWidget()
        right.addWidget(self.pictures, stretch=3)
        field_page = QWidget()
        field_layout = QVBoxLayout(field_page)
        self.field_label = QLabel("current field: -")
        field_layout.addWidget(self.field_label)
        self.graphics = pg.GraphicsLayoutWidget()
        self.view = self.graphics.addViewBox(lockAspect=True, invertY=True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        field_layout.addWidget(self.graphics, stretch=1)
        plan_page = QWidget()
        plan_layout = QVBoxLayout(plan_page)
        self.layout_label = QLabel("press Preview to see where the fields go")
        plan_layout.addWidget(self.layout_label)
        self.plan_graphics = pg.GraphicsLayoutWidget()
        self.plan_view = self.plan_graphics.addViewBox(lockAspect=True, invertY=True)
        self.overview = pg.ImageItem(axisOrder="row-major")
        self.plan_view.addItem(self.overview)
        self._layout_items: list[QGraphicsRectItem] = []
        plan_layout.addWidget(self.plan_graphics, stretch=1)
        self.pictures.addTab(plan_page, "Plan preview")
        self.pictures.addTab(field_page, "Acquired field")
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
        controller.layout_ready.connect(self.show_layout)
        self._before_start = before_start
        self._eta_start: tuple[float, int] | None = None  # (time, fields finished) of a run

    # -- plan text ---------------------------------------------------------------------------
    def plan(self) -> AcquisitionPlan:
        """The plan in the editor; InputError when it is not valid."""
        return parse_plan(self.editor.toPlainText())

    def _on_text_changed(self) -> None:
        """Show a valid plan's values in the form; a form over an invalid plan is disabled."""
        if self._syncing:
            return
        try:
            plan = self.plan()
        except DeepscopeError as exc:
            self.form.setEnabled(False)
            self.form.setToolTip(f"fix the YAML first: {exc}")
            return
        self.form.setEnabled(True)
        self.form.setToolTip("")
        self.form.show_plan(plan)

    def _on_form_edited(self, key: Key, value: object) -> None:
        """Write a form edit into the YAML (valid: the form is enabled only then)."""
        raw = yaml.safe_load(self.editor.toPlainText())
        set_key(raw, key, value)
        text = yaml.safe_dump(raw, sort_keys=False, default_flow_style=None)
        self._syncing = True
        try:
            self.editor.setPlainText(text)
        finally:
            self._syncing = False
        try:
            self.form.show_plan(self.plan())
        except DeepscopeError as exc:  # e.g. a region now too small for a target field
            self._warn(str(exc))

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

    def preview_plan(self) -> None:
        """Lay out the plan's fields over quick snaps of its region (in the background)."""
        try:
            plan = self.plan()
            profile = self.profile()
            if self._before_start is not None:
                self._before_start()  # the overview snaps: one user of the camera at a time
            self.controller.preview_plan(plan, profile)
        except DeepscopeError as exc:
            self._warn(str(exc))
            return
        self.layout_label.setText("taking the overview...")
        self.pictures.setCurrentIndex(0)

    def show_layout(self, lay: PlanLayout) -> None:
        """Draw the overview and a rectangle per tile and per target field (stage um)."""
        for item in self._layout_items:
            self.plan_view.removeItem(item)
        self._layout_items = []
        if lay.overview is not None and lay.overview_rect is not None:
            shown = lay.overview[..., 0] if lay.overview.shape[-1:] == (1,) else lay.overview
            self.overview.setImage(shown, autoLevels=False, levels=auto_levels(shown))
            self.overview.setRect(QRectF(*lay.overview_rect))
        else:
            self.overview.clear()
        for rects, colour in ((lay.tiles, "#ffd000"), (lay.targets, "#00e0ff")):
            for x, y, w, h in rects:
                item = QGraphicsRectItem(x, y, w, h)
                pen = QPen(QColor(colour))
                pen.setCosmetic(True)
                pen.setWidthF(1.5)
                item.setPen(pen)
                self.plan_view.addItem(item)
                self._layout_items.append(item)
        self.plan_view.autoRange(padding=0.02)
        self.layout_label.setText(
            f"{lay.note}: tiles yellow, target fields cyan, x right / y down in um"
        )

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
        self._eta_start = None
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
            f"{p.phase}: {p.finished}/{p.total} fields, {p.failed} failed{field}{self._eta(p)}"
        )

    def _eta(self, p: AcquisitionProgress) -> str:
        """``, about N min left`` at this run's pace (fields of an earlier run not counted)."""
        now = time.monotonic()
        if self._eta_start is None:
            self._eta_start = (now, p.finished)
            return ""
        t0, n0 = self._eta_start
        if p.finished <= n0 or p.finished >= p.total:
            return ""
        per_field = (now - t0) / (p.finished - n0)
        return f", about {format_eta(per_field * (p.total - p.finished))} left"

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
