"""Training panel: register a dataset, train, follow loss and validation SSIM, see the table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyqtgraph as pg
from pydantic import ValidationError
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from deepscope.errors import DeepscopeError, InputError
from gui.training_controller import (
    TrainingController,
    TrainingJob,
    TrainingOutcome,
    evaluation_rows,
)
from model.training.config import TrainConfig

if TYPE_CHECKING:
    from model.training.config import ValMetrics


class PathField(QWidget):
    """A line edit with a Browse button that picks a directory (or a file, with *file_filter*)."""

    def __init__(
        self, caption: str, parent: QWidget | None = None, *, file_filter: str | None = None
    ) -> None:
        super().__init__(parent)
        self.caption = caption
        self.file_filter = file_filter
        self.edit = QLineEdit()
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, stretch=1)
        row.addWidget(browse)

    def _browse(self) -> None:
        if self.file_filter is not None:
            chosen, _ = QFileDialog.getOpenFileName(
                self, self.caption, self.edit.text(), self.file_filter
            )
        else:
            chosen = QFileDialog.getExistingDirectory(self, self.caption, self.edit.text())
        if chosen:
            self.edit.setText(chosen)

    def path(self) -> Path | None:
        """The entered path, or None when empty."""
        text = self.edit.text().strip()
        return Path(text) if text else None


class TrainingPanel(QWidget):
    """The view of :class:`~gui.training_controller.TrainingController`."""

    def __init__(self, controller: TrainingController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        layout = QHBoxLayout(self)
        side = QVBoxLayout()
        layout.addLayout(side)
        form = QFormLayout()
        side.addLayout(form)
        self.dataset_field = PathField("Dataset directory")
        self.pairs_field = PathField("Pairs directory")
        self.model_field = PathField("Model output directory")
        self.register_box = QCheckBox("register the dataset first")
        self.register_box.setChecked(True)
        form.addRow("dataset", self.dataset_field)
        form.addRow("", self.register_box)
        form.addRow("pairs", self.pairs_field)
        form.addRow("model", self.model_field)
        defaults = TrainConfig()
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 1_000_000)
        self.steps_spin.setSingleStep(100)
        self.steps_spin.setValue(defaults.steps)
        self.val_spin = QSpinBox()
        self.val_spin.setRange(1, 1_000_000)
        self.val_spin.setValue(defaults.val_every)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 4096)
        self.batch_spin.setValue(defaults.batch_size)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(1e-6, 1.0)
        self.lr_spin.setSingleStep(1e-4)
        self.lr_spin.setValue(defaults.lr)
        self.patch_spin = QSpinBox()
        self.patch_spin.setRange(8, 1024)
        self.patch_spin.setValue(defaults.patch_size)
        self.blocks_spin = QSpinBox()
        self.blocks_spin.setRange(1, 32)
        self.blocks_spin.setValue(defaults.num_blocks)
        self.width_spin = QSpinBox()
        self.width_spin.setRange(1, 512)
        self.width_spin.setValue(defaults.base_channels)
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", "cpu", "cuda"])
        form.addRow("steps", self.steps_spin)
        form.addRow("validate every", self.val_spin)
        form.addRow("batch size", self.batch_spin)
        form.addRow("learning rate", self.lr_spin)
        form.addRow("40x patch size", self.patch_spin)
        form.addRow("residual blocks", self.blocks_spin)
        form.addRow("base channels", self.width_spin)
        form.addRow("device", self.device_combo)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(controller.cancel)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        side.addLayout(buttons)
        self.progress = QProgressBar()
        self.phase_label = QLabel("idle")
        side.addWidget(self.progress)
        side.addWidget(self.phase_label)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["method (test fields)", "SSIM", "PSNR (dB)"])
        # every column as wide as its header and values, and the table as wide as its columns
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        side.addWidget(self.table)

        plots = QVBoxLayout()
        layout.addLayout(plots, stretch=1)
        self.loss_plot = pg.PlotWidget(title="training loss")
        self.loss_plot.setLabel("bottom", "step")
        self.ssim_plot = pg.PlotWidget(title="validation SSIM")
        self.ssim_plot.setLabel("bottom", "step")
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen("y", width=2), symbol="o")
        self.ssim_curve = self.ssim_plot.plot(pen=pg.mkPen("c", width=2), symbol="o")
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.ssim_plot)

        controller.phase_changed.connect(self._on_phase)
        controller.registration_progress.connect(self._on_registration)
        controller.validated.connect(self._on_validation)
        controller.finished.connect(self.show_result)
        controller.failed.connect(self._warn)

    def job(self) -> TrainingJob:
        """The job described by the form; InputError/ValidationError for missing values."""
        pairs, model_dir = self.pairs_field.path(), self.model_field.path()
        dataset = self.dataset_field.path() if self.register_box.isChecked() else None
        if pairs is None or model_dir is None:
            raise InputError("choose a pairs directory and a model output directory")
        if self.register_box.isChecked() and dataset is None:
            raise InputError("choose a dataset directory, or untick 'register the dataset first'")
        config = TrainConfig(
            steps=self.steps_spin.value(),
            val_every=self.val_spin.value(),
            batch_size=self.batch_spin.value(),
            lr=self.lr_spin.value(),
            patch_size=self.patch_spin.value(),
            num_blocks=self.blocks_spin.value(),
            base_channels=self.width_spin.value(),
            device=self.device_combo.currentText(),
        )
        return TrainingJob(pairs_dir=pairs, model_dir=model_dir, config=config, dataset_dir=dataset)

    def start(self) -> None:
        """Start the job from the form; problems show a message."""
        try:
            job = self.job()
            self.controller.start(job)
        except (DeepscopeError, ValidationError) as exc:
            self._warn(str(exc))
            return
        self.table.setRowCount(0)
        self.loss_curve.setData([], [])
        self.ssim_curve.setData([], [])
        self.progress.setRange(0, job.config.steps)
        self.progress.setValue(0)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

    def _on_phase(self, phase: str) -> None:
        self.phase_label.setText(phase)
        if phase in ("done", "cancelled", "failed"):
            self.start_button.setEnabled(True)
            self.cancel_button.setEnabled(False)

    def _on_registration(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.phase_label.setText(f"registering: {done}/{total} fields")

    def _on_validation(self, metrics: ValMetrics) -> None:
        hist = self.controller.history
        steps = [m.step for m in hist]
        self.loss_curve.setData(steps, [m.train_loss for m in hist])
        self.ssim_curve.setData(steps, [m.val_ssim for m in hist])
        self.progress.setRange(0, self.steps_spin.value())
        self.progress.setValue(metrics.step)
        self.phase_label.setText(
            f"step {metrics.step}: loss {metrics.train_loss:.4g}, val SSIM {metrics.val_ssim:.4f}"
            f", PSNR {metrics.val_psnr:.2f} dB"
        )

    def show_result(self, outcome: TrainingOutcome) -> None:
        """Fill the evaluation table from a finished run."""
        r = outcome.result
        self.progress.setValue(self.progress.maximum())
        how = f"stopped early after step {r.steps}" if r.stopped_early else "done"
        summary = (
            f"{how}: best step {r.best_step}, val SSIM {r.best_val_ssim:.4f} "
            f"(bicubic {r.bicubic_val_ssim:.4f})"
        )
        if not r.beats_bicubic:
            summary += "; does NOT beat bicubic on validation"
        if outcome.report is None:
            self.table.setRowCount(0)
            self.phase_label.setText(f"{summary}; no evaluation: {outcome.note}")
            return
        self.phase_label.setText(summary)
        rows = evaluation_rows(outcome.report)
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, text in enumerate((row.method, f"{row.ssim:.4f}", f"{row.psnr_db:.2f}")):
                self.table.setItem(i, j, QTableWidgetItem(text))

    def _warn(self, message: str) -> None:
        QMessageBox.warning(self, "deepscope", message)
