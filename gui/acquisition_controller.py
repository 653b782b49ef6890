"""Paired-acquisition controller: plan text -> worker thread -> progress, oil pause, field list.

The acquisition runs in a :class:`~gui.worker.BackgroundTask`; its callbacks only emit signals
(or, for the oil pause, wait for the GUI's answer), so the camera path is never held up by the
window. The newest field image is loaded for display in its own thread, latest-only.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml
from PySide6.QtCore import QObject, Signal

from deepscope.errors import InputError
from deepscope.formats.dataset import FieldRecord, read_records
from gui.worker import BackgroundTask

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

    from acquire.plan import AcquisitionPlan
    from acquire.profile import MicroscopeProfile
    from acquire.runner import AcquisitionProgress, AcquisitionSummary

log = logging.getLogger("deepscope.gui")


def parse_plan(text: str) -> AcquisitionPlan:
    """Validate YAML (or JSON) plan text; InputError with a one-line message when invalid."""
    from acquire.plan import AcquisitionPlan

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"plan text is not valid YAML ({exc})".replace("\n", " ")) from exc
    return AcquisitionPlan.from_dict(raw, source="plan")


@dataclass(frozen=True)
class FieldPreview:
    """The image of one acquired field, ready to show (best plane of a z-stack)."""

    field_id: str
    image: np.ndarray
    pixel_size_um: float


def _load_preview(out_dir: Path, record: FieldRecord) -> FieldPreview:
    from deepscope.formats.dataset import open_dataset

    dataset = open_dataset(out_dir)
    stack, meta = dataset.load(record)
    return FieldPreview(record.field_id, stack[stack.shape[0] // 2], meta.pixel_size_um)


class AcquisitionController(QObject):
    """Run, resume and cancel paired acquisitions on *core*; no drawing."""

    progressed = Signal(object)  # AcquisitionProgress
    fields_changed = Signal(object)  # list[FieldRecord]
    field_preview = Signal(object)  # FieldPreview
    oil_requested = Signal()
    finished = Signal(object)  # AcquisitionSummary
    layout_ready = Signal(object)  # PlanLayout
    failed = Signal(str)
    running_changed = Signal(bool)

    def __init__(self, core: CMMCorePlus, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.out_dir: Path | None = None
        self.records: list[FieldRecord] = []
        self.summary: AcquisitionSummary | None = None
        self._cancel = threading.Event()
        self._oil_answered = threading.Event()
        self._oil_ok = False
        self._task: BackgroundTask | None = None
        self._preview_task: BackgroundTask | None = None
        self._preview_pending = False
        self._layout_task: BackgroundTask | None = None
        self.progressed.connect(self._on_progress)

    @property
    def running(self) -> bool:
        """True while an acquisition runs."""
        return self._task is not None and self._task.running

    def start(
        self,
        plan: AcquisitionPlan,
        out_dir: Path,
        *,
        resume: bool = False,
        profile: MicroscopeProfile | None = None,
    ) -> None:
        """Run *plan* into *out_dir* in a worker thread (``resume``: continue a dataset).

        *profile* gives the objectives' calibration; None: the default (uncalibrated) profile.
        """
        if self.running:
            raise InputError("an acquisition is running; cancel it first")
        self.out_dir = Path(out_dir)
        self.records = []
        self.summary = None
        self._cancel = threading.Event()
        task = BackgroundTask(
            self._run,
            plan,
            self.out_dir,
            resume,
            profile,
            name="deepscope-gui-acquisition",
            parent=self,
        )
        task.finished.connect(self._on_finished)
        task.failed.connect(self._on_failed)
        self._task = task
        task.start()
        self.running_changed.emit(True)

    def _run(
        self,
        plan: AcquisitionPlan,
        out_dir: Path,
        resume: bool,
        profile: MicroscopeProfile | None,
    ) -> AcquisitionSummary:
        from acquire.runner import run_acquisition

        return run_acquisition(
            plan,
            out_dir,
            self.core,
            profile=profile,
            resume=resume,
            pause_for_oil=self._pause_for_oil,
            progress=self.progressed.emit,
            cancel=self._cancel,
        )

    def preview_plan(self, plan: AcquisitionPlan, profile: MicroscopeProfile | None) -> None:
        """Lay out *plan*'s fields over a quick overview in a worker; emits :attr:`layout_ready`."""
        from acquire.profile import MicroscopeProfile
        from gui.plan_preview import plan_layout

        busy = self._layout_task is not None and self._layout_task.running
        if self.running or busy:
            raise InputError("the microscope is busy; preview the plan when it is idle")
        task = BackgroundTask(
            plan_layout,
            plan,
            self.core,
            profile or MicroscopeProfile(),
            name="deepscope-gui-plan-preview",
            parent=self,
        )
        task.finished.connect(self.layout_ready.emit)
        task.failed.connect(lambda exc: self.failed.emit(str(exc)))
        self._layout_task = task
        task.start()

    def _pause_for_oil(self) -> bool:  # worker thread: wait for the dialog's answer
        self._oil_answered.clear()
        self.oil_requested.emit()
        while not self._oil_answered.wait(0.1):
            if self._cancel.is_set():
                return False
        return self._oil_ok

    def answer_oil(self, ok: bool) -> None:
        """Answer the oil pause: True when oil is on the slide, False to stop."""
        self._oil_ok = bool(ok)
        self._oil_answered.set()

    def _on_progress(self, progress: AcquisitionProgress) -> None:
        self.refresh_fields()

    def refresh_fields(self) -> None:
        """Re-read the manifest; emit the field list and load the newest done field."""
        if self.out_dir is None or not self.out_dir.is_dir():
            return
        try:
            records = read_records(self.out_dir)
        except InputError as exc:  # a partly written line: next progress reads it
            log.debug("manifest not readable yet: %s", exc)
            return
        seen = {r.field_id for r in self.records if r.status == "done"}
        new_done = [r for r in records if r.status == "done" and r.field_id not in seen]
        self.records = records
        self.fields_changed.emit(records)
        if new_done:
            self._request_preview(new_done[-1])

    def _request_preview(self, record: FieldRecord) -> None:
        if self._preview_task is not None and self._preview_task.running:
            self._preview_pending = True
            return
        if self.out_dir is None:
            return
        task = BackgroundTask(
            _load_preview, self.out_dir, record, name="deepscope-gui-preview", parent=self
        )
        task.finished.connect(self._on_preview)
        task.failed.connect(lambda exc: log.debug("field preview failed: %s", exc))
        self._preview_task = task
        task.start()

    def _on_preview(self, preview: FieldPreview) -> None:
        self.field_preview.emit(preview)
        if self._preview_pending:
            self._preview_pending = False
            done = [r for r in self.records if r.status == "done"]
            if done and done[-1].field_id != preview.field_id:
                self._request_preview(done[-1])

    def _on_finished(self, summary: AcquisitionSummary) -> None:
        self.summary = summary
        self.refresh_fields()
        self.running_changed.emit(False)
        self.finished.emit(summary)

    def _on_failed(self, exc: BaseException) -> None:
        self.refresh_fields()
        self.running_changed.emit(False)
        self.failed.emit(str(exc))

    def cancel(self) -> None:
        """Stop after the current field; completed fields stay and can be resumed."""
        self._cancel.set()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel a running acquisition and join the worker threads."""
        self.cancel()
        for task in (self._task, self._preview_task, self._layout_task):
            if task is not None:
                task.join(timeout)
