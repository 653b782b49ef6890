"""Registration + training controller: runs both in a worker thread, relays progress."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from deepscope.errors import InputError
from gui.worker import BackgroundTask

if TYPE_CHECKING:
    from model.training.config import TrainConfig, TrainResult, ValMetrics
    from model.training.evaluate import EvaluationReport


log = logging.getLogger("deepscope.gui")


class _CancelledError(Exception):
    """Raised from registration's progress callback to stop it after Cancel.

    Registration writes ``pairs.json`` only at its end and clears a stopped run's leftovers
    when it starts again, so a cancelled registration leaves nothing half made.
    """


@dataclass(frozen=True)
class TrainingJob:
    """What to run: register *dataset_dir* into *pairs_dir* (optional), then train."""

    pairs_dir: Path
    model_dir: Path
    config: TrainConfig
    dataset_dir: Path | None = None
    resume: bool = True


@dataclass(frozen=True)
class EvaluationRow:
    """One line of the evaluation table: a method and its mean scores on the test fields."""

    method: str
    ssim: float
    psnr_db: float


@dataclass(frozen=True)
class TrainingOutcome:
    """A finished job: the training result and the test-field evaluation (None: no test set)."""

    result: TrainResult
    report: EvaluationReport | None
    note: str = ""


def evaluation_rows(report: EvaluationReport) -> list[EvaluationRow]:
    """Every method of the evaluation (classical baselines, network, network twice)."""
    from model.training.evaluate import METHODS

    return [EvaluationRow(m, report.mean[f"{m}_ssim"], report.mean[f"{m}_psnr"]) for m in METHODS]


class TrainingController(QObject):
    """Start, follow and cancel registration + training; no drawing."""

    #: "registering", "training", "evaluating", "done", "cancelled", "failed"
    phase_changed = Signal(str)
    registration_progress = Signal(int, int)  # done, total
    validated = Signal(object)  # ValMetrics
    finished = Signal(object)  # TrainingOutcome
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.history: list[ValMetrics] = []
        self.outcome: TrainingOutcome | None = None
        self._cancel = threading.Event()
        self._task: BackgroundTask | None = None
        self.validated.connect(self._record_validation)

    @property
    def running(self) -> bool:
        """True while a job runs."""
        return self._task is not None and self._task.running

    def start(self, job: TrainingJob) -> None:
        """Run *job* in a worker thread; InputError when one runs already."""
        if self.running:
            raise InputError("a training job is running; cancel it first")
        if job.dataset_dir is None and not job.pairs_dir.is_dir():
            raise InputError(f"pairs directory {job.pairs_dir} does not exist; register first")
        self.history = []
        self.outcome = None
        self._cancel = threading.Event()
        task = BackgroundTask(self._run, job, name="deepscope-gui-training", parent=self)
        task.finished.connect(self._on_finished)
        task.failed.connect(self._on_failed)
        self._task = task
        task.start()

    def _run(self, job: TrainingJob) -> TrainingOutcome | None:
        if job.dataset_dir is not None:
            from model.registration import register_dataset

            self.phase_changed.emit("registering")
            try:
                register_dataset(job.dataset_dir, job.pairs_dir, progress=self._on_registered)
            except _CancelledError:
                return None
        from model.training import train_model

        self.phase_changed.emit("training")
        result = train_model(
            job.pairs_dir,
            job.model_dir,
            job.config,
            progress=self._on_validation,
            cancel=self._cancel,
            resume=job.resume,
        )
        if not result.completed and self._cancel.is_set():
            return TrainingOutcome(result, None, "cancelled")
        from model.device import resolve_device
        from model.training.evaluate import evaluate_model

        self.phase_changed.emit("evaluating")
        device = str(resolve_device(job.config.device))
        out = job.model_dir / "evaluation"
        try:
            report = evaluate_model(job.model_dir, job.pairs_dir, out, device=device)
        except InputError as exc:  # e.g. a pairs set without test fields
            return TrainingOutcome(result, None, str(exc))
        return TrainingOutcome(result, report)

    def _on_registered(self, done: int, total: int) -> None:  # worker thread
        """Relay registration progress; after Cancel, stop at the end of the current field."""
        self.registration_progress.emit(done, total)
        if self._cancel.is_set():
            raise _CancelledError

    def _on_validation(self, metrics: ValMetrics) -> None:  # worker thread
        self.validated.emit(metrics)

    def _on_finished(self, outcome: TrainingOutcome | None) -> None:
        self.outcome = outcome
        if outcome is None or outcome.note == "cancelled":
            self.phase_changed.emit("cancelled")
            return
        self.phase_changed.emit("done")
        self.finished.emit(outcome)

    def _on_failed(self, exc: BaseException) -> None:
        self.phase_changed.emit("failed")
        self.failed.emit(str(exc))

    def _record_validation(self, metrics: ValMetrics) -> None:
        self.history.append(metrics)

    def cancel(self) -> None:
        """Stop registration after the current field, training after the current step.

        Completed training output is kept (training resumes from its checkpoint).
        """
        self._cancel.set()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel a running job and join its thread."""
        self.cancel()
        if self._task is not None:
            self._task.join(timeout)
