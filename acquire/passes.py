"""One pass of fields (all tiles, or all targets) as pycromanager acquisitions.

The events of a pass carry the field and z index as axes, the objective as a config-group
change, the exposure and the stage position. Hooks on the engine thread do the per-field
autofocus (before the hardware moves) and read the stage position back (after it moved); the
image processor collects each field's z-stack and hands it to
:class:`~acquire.storage.DatasetWriter`. When a device fails, pycromanager aborts the
acquisition; the pass counts an attempt against the field that was running, records it as
failed once its retries are spent, and starts a new acquisition with the fields still pending.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from acquire.autofocus import z_scan
from acquire.backends import Scope
from acquire.layout import FieldSpec
from acquire.plan import AcquisitionPlan, ZStack
from acquire.profile import MicroscopeProfile
from acquire.storage import DatasetWriter
from deepscope.atomic import check_free_space
from deepscope.errors import DeepscopeError, DiskFullError, HardwareError
from deepscope.formats.dataset import ObjectiveInfo
from deepscope.ometiff import ImageMeta, PlaneMeta

log = logging.getLogger("deepscope.acquire")

Phase = Literal["tiles", "oil", "targets", "done"]


@dataclass(frozen=True)
class AcquisitionProgress:
    """A snapshot passed to the progress callback (from the acquisition's worker thread)."""

    phase: Phase
    finished: int
    total: int
    failed: int = 0
    field_id: str | None = None


@dataclass
class _Collected:
    """Planes of one field as they arrive, with read-back positions and times."""

    images: dict[int, np.ndarray] = field(default_factory=dict)  # sums of the exposures
    counts: dict[int, int] = field(default_factory=dict)
    positions: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)


class CancelledError(Exception):
    """Raised inside the runner when the cancel event is set."""


@dataclass(frozen=True)
class Optics:
    """An objective as measured on this microscope: its data, pixel size and field of view."""

    name: str
    spec: ObjectiveInfo
    fov_um: tuple[float, float]


class PassRunner:
    """Runs passes of fields for one call to :func:`~acquire.runner.run_acquisition`."""

    def __init__(
        self,
        plan: AcquisitionPlan,
        writer: DatasetWriter,
        scope: Scope,
        profile: MicroscopeProfile,
        progress: Callable[[AcquisitionProgress], None] | None,
        cancel: threading.Event,
    ) -> None:
        self.plan = plan
        self.writer = writer
        self.scope = scope
        self.profile = profile
        self.progress_cb = progress
        self.cancel = cancel
        self.done_before = writer.done_ids()
        self.bit_depth = scope.bit_depth()
        self.finished = len(self.done_before)
        self.failed: list[tuple[str, str]] = []
        self.total = 0
        self.phase: Phase = "tiles"
        # bytes of one stored plane: the camera's frame, then the last field's (as written)
        self.plane_bytes = scope.frame_bytes()

    # -- progress ------------------------------------------------------------------------
    def report(self, field_id: str | None = None) -> None:
        """Send a progress snapshot to the callback, if there is one."""
        if self.progress_cb is not None:
            self.progress_cb(
                AcquisitionProgress(
                    self.phase, self.finished, self.total, len(self.failed), field_id
                )
            )

    def check_space(self, planes: int, fields: int = 1) -> None:
        """Raise :class:`DiskFullError` unless *fields* fields of *planes* planes fit on disk.

        Called before a field is imaged, so that no light falls on one that cannot be saved.
        """
        check_free_space(self.writer.fields_dir, self.plane_bytes * planes * fields)

    # -- one pass ------------------------------------------------------------------------
    def run_pass(
        self,
        fields: Sequence[FieldSpec],
        optics: Optics,
        exposure_ms: float,
        zstack: ZStack,
        stage_of: Callable[[FieldSpec], tuple[float, float]],
        focus_of: Callable[[float, float], float],
        per_field_af: bool,
        averages: int = 1,
    ) -> None:
        """Acquire *fields* not done before, retrying failures up to the plan's ``retries``.

        *stage_of* gives a field's stage position, *focus_of* the focus z at a stage position;
        with *per_field_af* a z scan around that focus runs before each field. Each plane is
        the mean of *averages* exposures.
        """
        pending = [f for f in fields if f.field_id not in self.done_before]
        failures: dict[str, int] = {}
        while pending:
            if self.cancel.is_set():
                raise CancelledError
            completed, failure = self._acquire(
                pending,
                optics,
                exposure_ms,
                zstack,
                stage_of,
                focus_of,
                per_field_af,
                failures,
                averages,
            )
            pending = [f for f in pending if f.field_id not in completed]
            if self.cancel.is_set():
                raise CancelledError
            if failure is None:
                if pending:
                    raise HardwareError("the acquisition engine stopped before all fields")
                continue
            bad, reason = failure
            n = failures[bad.field_id] = failures.get(bad.field_id, 0) + 1
            if n <= self.plan.retries:
                log.warning("%s: %s; retry %d of %d", bad.field_id, reason, n, self.plan.retries)
                continue
            self.writer.write_failure(bad, stage_xy_um=stage_of(bad), attempts=n, reason=reason)
            self.failed.append((bad.field_id, reason))
            self.finished += 1
            self.report(bad.field_id)
            pending = [f for f in pending if f.field_id != bad.field_id]
            if self.plan.on_failure == "abort":
                raise HardwareError(f"{bad.field_id} failed after {n} attempt(s): {reason}")

    def _acquire(
        self,
        fields: list[FieldSpec],
        optics: Optics,
        exposure_ms: float,
        zstack: ZStack,
        stage_of: Callable[[FieldSpec], tuple[float, float]],
        focus_of: Callable[[float, float], float],
        per_field_af: bool,
        failures: dict[str, int],
        averages: int,
    ) -> tuple[set[str], tuple[FieldSpec, str] | None]:
        """One pycromanager acquisition over *fields*; returns the finished ids and a failure."""
        offsets = zstack.offsets_um()
        stage = [stage_of(f) for f in fields]
        focus = [focus_of(*xy) for xy in stage]
        group = self.profile.objective_group
        # only a field's first event moves the XY stage: pycromanager's engine re-commands XY
        # on every event that carries it, and an open-loop stage lands a new ~0.3 um off each
        # time, which would blur the mean of the exposures and misalign the z-planes
        events = [
            {
                "axes": {"field": i, "z": k} | ({"time": n} if averages > 1 else {}),
                "z": focus[i] + dz,
                "exposure": exposure_ms,
                "config_group": [group, optics.name],
            }
            | ({"x": stage[i][0], "y": stage[i][1]} if k == 0 and n == 0 else {})
            for i in range(len(fields))
            for k, dz in enumerate(offsets)
            for n in range(averages)
        ]
        if averages > 1:
            # repeated exposures as time points with distinct start times: pycromanager would
            # otherwise merge them into one hardware sequence and hand the hooks a list of events
            for j, event in enumerate(events):
                event["min_start_time"] = 1e-3 * (j % averages)
        collected: dict[int, _Collected] = {}
        completed: set[str] = set()
        state: dict[str, Any] = {"current": 0, "error": None, "fatal": None}
        lock = threading.Lock()

        def fail(i: int, reason: str) -> None:
            with lock:
                if state["error"] is None:
                    state["error"] = (i, reason)
            acq.abort()

        def before_hardware(event: dict[str, Any]) -> dict[str, Any] | None:
            i, k = int(event["axes"]["field"]), int(event["axes"]["z"])
            state["current"] = i
            if self.cancel.is_set():
                acq.abort()
                return None
            if k == 0:  # no light on a field whose file cannot fit
                try:  # with the fields taken but not yet written
                    self.check_space(len(offsets), len(collected) + 1)
                except DiskFullError as exc:
                    state["fatal"] = exc
                    acq.abort()
                    return None
            if per_field_af:
                try:
                    if k == 0 and event["axes"].get("time", 0) == 0:
                        self.scope.move_xy(*stage[i])
                        focus[i] = z_scan(
                            self.scope.snap_at,
                            focus[i],
                            self.plan.autofocus.range_um,
                            self.plan.autofocus.step_um,
                        )
                    event["z"] = focus[i] + offsets[k]
                except Exception as exc:
                    fail(i, f"autofocus: {type(exc).__name__}: {exc}")
                    return None
            return event

        def after_hardware(event: dict[str, Any]) -> dict[str, Any] | None:
            i, k = int(event["axes"]["field"]), int(event["axes"]["z"])
            try:
                x, y, z = self.scope.position()
            except Exception as exc:
                fail(i, f"stage read-back: {type(exc).__name__}: {exc}")
                return None
            collected.setdefault(i, _Collected()).positions[k] = (x, y, z, time.monotonic())
            return event

        def process(image: np.ndarray, metadata: dict[str, Any]) -> None:
            axes = metadata["Axes"]
            i, k = int(axes["field"]), int(axes["z"])
            c = collected.setdefault(i, _Collected())
            frame = np.asarray(image)
            c.images[k] = c.images[k] + frame if k in c.images else frame.astype(np.float64)
            c.counts[k] = c.counts.get(k, 0) + 1
            done = len(c.counts) == len(offsets) and min(c.counts.values()) == averages
            if not done or state["fatal"] is not None:
                return
            for kk in c.images:  # the mean of the exposures, in the camera's dtype
                c.images[kk] = np.rint(c.images[kk] / averages).astype(frame.dtype)
            try:
                self._write(fields[i], c, optics, exposure_ms, zstack, stage[i], focus[i], failures)
            except DeepscopeError as exc:  # disk full, unwritable file: stop, keep what is written
                state["fatal"] = exc
                acq.abort()
                return
            except Exception as exc:  # charged to this field, not the one the engine is on
                fail(i, f"saving: {type(exc).__name__}: {exc}")
                return
            completed.add(fields[i].field_id)
            del collected[i]

        acq = self.scope.acquisition(
            image_process_fn=process,
            pre_hardware_hook_fn=before_hardware,
            post_hardware_hook_fn=after_hardware,
        )
        try:
            acq.acquire(events)
            acq.mark_finished()
            acq.await_completion()
        except KeyboardInterrupt:  # a forced stop; a polite one sets `cancel` instead
            with contextlib.suppress(Exception):
                acq.abort()
            raise
        except Exception as exc:
            i = state["current"]
            with lock:
                if state["error"] is None:
                    state["error"] = (i, f"{type(exc).__name__}: {exc}")
        if state["fatal"] is not None:
            raise state["fatal"]
        if self.cancel.is_set():
            return completed, None
        if state["error"] is not None:
            i, reason = state["error"]
            if fields[i].field_id not in completed:
                return completed, (fields[i], reason)
        return completed, None

    def _write(
        self,
        spec: FieldSpec,
        c: _Collected,
        optics: Optics,
        exposure_ms: float,
        zstack: ZStack,
        stage_xy: tuple[float, float],
        focus_z: float,
        failures: dict[str, int],
    ) -> None:
        n = len(c.images)
        stack = np.stack([c.images[k] for k in range(n)])
        self.plane_bytes = stack.nbytes // n
        t_first = min(p[3] for p in c.positions.values()) if c.positions else 0.0
        planes = tuple(
            PlaneMeta(
                x_um=c.positions[k][0],
                y_um=c.positions[k][1],
                z_um=c.positions[k][2],
                exposure_ms=exposure_ms,
                t_s=c.positions[k][3] - t_first,
            )
            for k in range(n)
        )
        meta = ImageMeta(
            pixel_size_um=optics.spec.pixel_size_um,
            z_step_um=zstack.step_um if n > 1 else None,
            planes=planes,
            objective=optics.name,
            magnification=optics.spec.magnification,
            na=optics.spec.na,
            immersion=optics.spec.immersion,
            channel_names=("R", "G", "B") if stack.ndim == 4 and stack.shape[-1] == 3 else (),
            acquired_at=datetime.now(UTC),
            significant_bits=self.bit_depth,
            name=spec.field_id,
            annotations={
                "field_id": spec.field_id,
                "role": spec.role,
                "plan_hash": self.writer.info.plan_hash,
            },
        )
        self.writer.write_field(
            spec,
            stack,
            meta,
            stage_xy_um=stage_xy,
            z_um=focus_z,
            attempts=failures.get(spec.field_id, 0) + 1,
        )
        self.finished += 1
        self.report(spec.field_id)
