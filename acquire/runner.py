"""Running a plan: 40x tiles, the oil pause, 100x fields, through pycromanager's ``Acquisition``.

Each pass (tiles, then targets) is one pycromanager acquisition whose events carry the field and
z index as axes, the objective as a config-group change, the exposure and the stage position.
Hooks on the engine thread do the per-field autofocus (before the hardware moves) and read the
stage position back (after it moved); the image processor collects each field's z-stack and
hands it to :class:`~acquire.storage.DatasetWriter`. When a device fails, pycromanager aborts the
acquisition; the runner counts an attempt against the field that was running, records it as
failed once its retries are spent, and starts a new acquisition with the fields still pending.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from skimage.measure import block_reduce

from acquire import layout
from acquire.autofocus import FocusMap, map_points, z_scan
from acquire.backends import Scope, python_scope
from acquire.dataset import DatasetInfo, ObjectiveInfo
from acquire.layout import FieldSpec
from acquire.plan import AcquisitionPlan, ZStack
from acquire.profile import MicroscopeProfile
from acquire.storage import DatasetWriter, now_iso
from deepscope import __version__
from deepscope.errors import DeepscopeError, HardwareError, InputError
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


@dataclass(frozen=True)
class AcquisitionSummary:
    """What a run did; ``skipped`` counts fields already done before a resume."""

    out_dir: Path
    total: int
    done: int
    failed: int
    skipped: int
    cancelled: bool
    elapsed_s: float
    failures: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for ``--json``."""
        return {
            "out_dir": str(self.out_dir),
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "cancelled": self.cancelled,
            "elapsed_s": round(self.elapsed_s, 3),
            "failures": [{"field_id": f, "reason": r} for f, r in self.failures],
        }


@dataclass
class _Collected:
    """Planes of one field as they arrive, with read-back positions and times."""

    images: dict[int, np.ndarray] = field(default_factory=dict)
    positions: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)


class _CancelledError(Exception):
    """Raised inside the runner when the cancel event is set."""


@dataclass(frozen=True)
class _Optics:
    name: str
    spec: ObjectiveInfo
    fov_um: tuple[float, float]


class _Run:
    """State of one call to :func:`run_acquisition`."""

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
        self.finished = len(self.done_before)
        self.failed: list[tuple[str, str]] = []
        self.total = 0
        self.phase: Phase = "tiles"

    # -- progress ------------------------------------------------------------------------
    def report(self, field_id: str | None = None) -> None:
        if self.progress_cb is not None:
            self.progress_cb(
                AcquisitionProgress(
                    self.phase, self.finished, self.total, len(self.failed), field_id
                )
            )

    # -- one pass ------------------------------------------------------------------------
    def run_pass(
        self,
        fields: Sequence[FieldSpec],
        optics: _Optics,
        exposure_ms: float,
        zstack: ZStack,
        stage_of: Callable[[FieldSpec], tuple[float, float]],
        focus_of: Callable[[float, float], float],
        per_field_af: bool,
    ) -> None:
        pending = [f for f in fields if f.field_id not in self.done_before]
        failures: dict[str, int] = {}
        while pending:
            if self.cancel.is_set():
                raise _CancelledError
            completed, failure = self._acquire(
                pending, optics, exposure_ms, zstack, stage_of, focus_of, per_field_af, failures
            )
            pending = [f for f in pending if f.field_id not in completed]
            if self.cancel.is_set():
                raise _CancelledError
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
        optics: _Optics,
        exposure_ms: float,
        zstack: ZStack,
        stage_of: Callable[[FieldSpec], tuple[float, float]],
        focus_of: Callable[[float, float], float],
        per_field_af: bool,
        failures: dict[str, int],
    ) -> tuple[set[str], tuple[FieldSpec, str] | None]:
        """One pycromanager acquisition over *fields*; returns the finished ids and a failure."""
        offsets = zstack.offsets_um()
        stage = [stage_of(f) for f in fields]
        focus = [focus_of(*xy) for xy in stage]
        group = self.profile.objective_group
        events = [
            {
                "axes": {"field": i, "z": k},
                "x": stage[i][0],
                "y": stage[i][1],
                "z": focus[i] + dz,
                "exposure": exposure_ms,
                "config_group": [group, optics.name],
            }
            for i in range(len(fields))
            for k, dz in enumerate(offsets)
        ]
        collected: dict[int, _Collected] = {}
        completed: set[str] = set()
        state: dict[str, Any] = {"current": 0, "error": None, "fatal": None, "t0": None}
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
            if per_field_af:
                try:
                    if k == 0:
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
            now = time.monotonic()
            if state["t0"] is None:
                state["t0"] = now
            collected.setdefault(i, _Collected()).positions[k] = (x, y, z, now)
            return event

        def process(image: np.ndarray, metadata: dict[str, Any]) -> None:
            axes = metadata["Axes"]
            i, k = int(axes["field"]), int(axes["z"])
            c = collected.setdefault(i, _Collected())
            c.images[k] = np.asarray(image)
            if len(c.images) < len(offsets) or state["fatal"] is not None:
                return
            try:
                self._write(fields[i], c, optics, exposure_ms, zstack, stage[i], focus[i], failures)
            except DeepscopeError as exc:  # disk full and the like: stop, keep what is written
                state["fatal"] = exc
                acq.abort()
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
        except KeyboardInterrupt:
            acq.abort()
            acq.await_completion()
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
        optics: _Optics,
        exposure_ms: float,
        zstack: ZStack,
        stage_xy: tuple[float, float],
        focus_z: float,
        failures: dict[str, int],
    ) -> None:
        n = len(c.images)
        stack = np.stack([c.images[k] for k in range(n)])
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


def _objective_info(scope: Scope, profile: MicroscopeProfile, name: str) -> _Optics:
    """Check objective *name* exists, swing it in and measure its pixel size and field."""
    spec = profile.objective(name)
    presets = scope.presets(profile.objective_group)
    if name not in presets:
        raise InputError(
            f"objective {name!r} is not a preset of config group {profile.objective_group!r}; "
            f"expected one of: {', '.join(presets) or '(group missing)'}"
        )
    scope.set_objective(profile.objective_group, name)
    px = scope.pixel_size_um()
    if px <= 0:
        raise InputError(f"no pixel size is configured for objective {name!r}")
    width, height = scope.image_size()
    info = ObjectiveInfo(
        name=name,
        magnification=spec.magnification,
        na=spec.na,
        immersion=spec.immersion,
        pixel_size_um=px,
    )
    return _Optics(name, info, (width * px, height * px))


def _content_check(
    writer: DatasetWriter, tiles: _Optics, target_fov_um: tuple[float, float], threshold: float
) -> Callable[[float, float], bool]:
    """Build ``accept(x, y)``: True if the tile under a target field is more than glass."""
    from acquire.dataset import open_dataset

    ds = open_dataset(writer.root)
    records = ds.done("tile")
    cache: dict[str, np.ndarray] = {}
    px = tiles.spec.pixel_size_um

    def accept(x: float, y: float) -> bool:
        if not records:
            return True
        rec = min(records, key=lambda r: (r.x_um - x) ** 2 + (r.y_um - y) ** 2)
        if rec.field_id not in cache:
            stack, _ = ds.load(rec)
            cache[rec.field_id] = stack[len(stack) // 2].astype(np.float32).mean(axis=-1)
        grey = cache[rec.field_id]
        h, w = grey.shape
        col = (x - rec.x_um) / px + (w - 1) / 2
        row = (y - rec.y_um) / px + (h - 1) / 2
        hw, hh = target_fov_um[0] / px / 2, target_fov_um[1] / px / 2
        r0, r1 = max(int(row - hh), 0), max(int(row + hh), 0)
        c0, c1 = max(int(col - hw), 0), max(int(col + hw), 0)
        patch = grey[r0:r1, c0:c1]
        patch = patch[: patch.shape[0] // 4 * 4, : patch.shape[1] // 4 * 4]  # whole 4x4 blocks
        if min(patch.shape) < 8:
            return True
        smooth = block_reduce(patch, (4, 4), np.mean)  # averages out shot noise, keeps structure
        mean = float(smooth.mean())
        return mean > 0 and float(smooth.std()) / mean >= threshold

    return accept


def _tile_focus(
    writer: DatasetWriter, fallback: Callable[[float, float], float]
) -> Callable[[float, float], float]:
    """Focus z of the nearest tile acquired (autofocus, focus map or nominal), else *fallback*."""
    tiles = [
        (r.x_um, r.y_um, r.z_um)
        for r in writer.records().values()
        if r.role == "tile" and r.status == "done" and r.z_um is not None
    ]

    def focus(x: float, y: float) -> float:
        if not tiles:
            return fallback(x, y)
        return min(tiles, key=lambda t: (t[0] - x) ** 2 + (t[1] - y) ** 2)[2]

    return focus


def _check_limits(
    plan: AcquisitionPlan,
    profile: MicroscopeProfile,
    tiles: Sequence[FieldSpec],
    focus_z: float,
) -> None:
    """Refuse a plan whose tiles, target area or z range leave the stage's travel."""
    limits = profile.stage_limits
    cal = profile.calibration
    for t in tiles:
        limits.check(f"tile {t.field_id}", t.x_um, t.y_um)
    r = plan.region
    for x, y in ((r.x_um, r.y_um), (r.x_max_um, r.y_max_um)):
        limits.check("target field", x - cal.dx_um, y - cal.dy_um)
    af = plan.autofocus.range_um / 2 if plan.autofocus.mode != "none" else 0.0
    for spec, dz in ((plan.tiles, 0.0), (plan.targets, cal.dz_um)):
        offs = spec.z.offsets_um()
        limits.check("z-stack", r.x_um, r.y_um, focus_z + dz + offs[0] - af)
        limits.check("z-stack", r.x_um, r.y_um, focus_z + dz + offs[-1] + af)


def run_acquisition(
    plan: AcquisitionPlan,
    out_dir: str | Path,
    core: Any,
    *,
    profile: MicroscopeProfile | None = None,
    resume: bool = False,
    pause_for_oil: Callable[[], bool] | None = None,
    progress: Callable[[AcquisitionProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> AcquisitionSummary:
    """Acquire *plan* into the dataset directory *out_dir*.

    Parameters
    ----------
    plan
        What to acquire.
    out_dir
        Dataset directory; created, or continued with *resume* (same plan only).
    core
        A pymmcore-plus core (the simulator's, or one with a hardware config loaded), or a
        :class:`~acquire.backends.Scope` (e.g. on Micro-Manager via ZMQ).
    profile
        Objectives, calibration and stage limits; the default profile if None.
    resume
        Continue a dataset of the same plan: done fields are skipped, failed ones retried.
    pause_for_oil
        Called before the target objective swings in; return False to stop there. None: no pause.
    progress
        Called after every finished field, from the acquisition's worker thread.
    cancel
        Set it to stop after the current event; finished fields are kept.

    Raises
    ------
    InputError
        Bad plan for this microscope or an unusable *out_dir*, before any stage moves.
    DiskFullError
        The disk filled up; every field recorded before is intact.
    HardwareError
        A field failed and the plan's ``on_failure`` is ``abort``.
    """
    profile = profile or MicroscopeProfile()
    cancel = cancel or threading.Event()
    if isinstance(core, Scope):
        return _run(plan, Path(out_dir), core, profile, resume, pause_for_oil, progress, cancel)
    with python_scope(core) as scope:
        return _run(plan, Path(out_dir), scope, profile, resume, pause_for_oil, progress, cancel)


def _run(
    plan: AcquisitionPlan,
    out_dir: Path,
    scope: Scope,
    profile: MicroscopeProfile,
    resume: bool,
    pause_for_oil: Callable[[], bool] | None,
    progress: Callable[[AcquisitionProgress], None] | None,
    cancel: threading.Event,
) -> AcquisitionSummary:
    t_start = time.monotonic()
    # -- everything checked before any stage moves -------------------------------------------
    if plan.camera_roi is not None:
        scope.set_roi(plan.camera_roi)
    target_optics = _objective_info(scope, profile, plan.targets.objective)
    tile_optics = _objective_info(scope, profile, plan.tiles.objective)
    focus_z = plan.focus_z_um if plan.focus_z_um is not None else scope.position()[2]
    tiles = layout.tile_grid(
        plan.region,
        tile_optics.fov_um,
        plan.tiles.overlap,
        tile_optics.name,
        serpentine=plan.serpentine,
    )
    _check_limits(plan, profile, tiles, focus_z)
    info = DatasetInfo(
        software_version=__version__,
        created=now_iso(),
        tile_objective=tile_optics.spec,
        target_objective=target_optics.spec,
        calibration=profile.calibration,
        plan=plan.model_dump(mode="json"),
        plan_hash=plan.plan_hash(),
        profile=profile.model_dump(mode="json"),
        backend="python" if scope.java_port is None else f"java:{scope.java_port}",
    )
    writer = DatasetWriter.open(out_dir, info, resume=resume)
    run = _Run(plan, writer, scope, profile, progress, cancel)
    skipped = len(run.done_before)
    n_targets = len(plan.targets.centres_um) or plan.targets.count
    run.total = len(tiles) + n_targets
    cal = profile.calibration
    af = plan.autofocus
    cancelled = False
    try:
        # -- pass 1: tiles ---------------------------------------------------------------------
        scope.set_objective(profile.objective_group, tile_optics.name)
        scope.set_exposure(plan.tiles.exposure_ms)
        focus_of: Callable[[float, float], float] = lambda x, y: focus_z  # noqa: E731
        if af.mode == "focus_map" and any(t.field_id not in run.done_before for t in tiles):
            r = plan.region
            pts = map_points((r.x_um, r.x_max_um), (r.y_um, r.y_max_um), af.map_points)
            measured = []
            for x, y in pts:
                scope.move_xy(x, y)
                measured.append((x, y, z_scan(scope.snap_at, focus_z, af.range_um, af.step_um)))
            focus_of = FocusMap(measured)
        run.report()
        run.run_pass(
            tiles,
            tile_optics,
            plan.tiles.exposure_ms,
            plan.tiles.z,
            lambda f: (f.x_um, f.y_um),
            focus_of,
            af.mode == "per_field",
        )
        # -- choose the target fields ----------------------------------------------------------
        centres = list(plan.targets.centres_um)
        if plan.targets.count:
            saved = writer.saved_targets()
            if saved is None:
                accept = (
                    _content_check(
                        writer, tile_optics, target_optics.fov_um, plan.targets.empty_threshold
                    )
                    if plan.targets.skip_empty
                    else None
                )
                saved = layout.sample_centres(
                    plan.region,
                    plan.targets.count,
                    target_optics.fov_um,
                    seed=plan.targets.seed,
                    margin_um=plan.targets.margin_um,
                    accept=accept,
                )
                writer.save_targets(saved)
            centres = saved
            if len(centres) < plan.targets.count:
                log.warning(
                    "only %d of %d target fields fit the region", len(centres), plan.targets.count
                )
        targets = layout.target_fields(
            centres, target_optics.name, target_optics.fov_um[1], plan.serpentine
        )
        run.total = len(tiles) + len(targets)
        # -- oil, then pass 2: targets ----------------------------------------------------------
        if any(t.field_id not in run.done_before for t in targets):
            run.phase = "oil"
            run.report()
            if pause_for_oil is not None and not pause_for_oil():
                raise _CancelledError
            run.phase = "targets"
            tile_focus = _tile_focus(writer, focus_of)
            scope.set_objective(profile.objective_group, target_optics.name)
            scope.set_exposure(plan.targets.exposure_ms)
            run.run_pass(
                targets,
                target_optics,
                plan.targets.exposure_ms,
                plan.targets.z,
                lambda f: (f.x_um - cal.dx_um, f.y_um - cal.dy_um),
                lambda x, y: tile_focus(x + cal.dx_um, y + cal.dy_um) + cal.dz_um,
                af.mode == "per_field",
            )
        run.phase = "done"
        run.report()
    except _CancelledError:
        cancelled = True
    records = writer.records()
    return AcquisitionSummary(
        out_dir=out_dir,
        total=run.total,
        done=sum(r.status == "done" for r in records.values()),
        failed=sum(r.status == "failed" for r in records.values()),
        skipped=skipped,
        cancelled=cancelled,
        elapsed_s=time.monotonic() - t_start,
        failures=tuple(run.failed),
    )
