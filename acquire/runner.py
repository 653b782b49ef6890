"""Running a plan: 40x tiles, the oil pause, 100x fields, through pycromanager's ``Acquisition``.

:func:`run_acquisition` checks the plan against the microscope before anything moves, opens (or
resumes) the dataset, and runs two passes (:mod:`acquire.passes`): every tile, then, after the
pause for immersion oil, every target field at the calibrated offsets. With the plan's
``flat_field`` each objective first takes its blank frames on bare glass.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acquire import layout
from acquire.autofocus import FocusMap, map_points, z_scan
from acquire.backends import Scope, python_scope
from acquire.layout import FieldSpec
from acquire.passes import AcquisitionProgress, CancelledError, Optics, PassRunner
from acquire.plan import AcquisitionPlan, ZStack
from acquire.profile import MicroscopeProfile
from acquire.storage import DatasetWriter, now_iso
from acquire.targets import content_check, tile_focus
from deepscope import __version__
from deepscope.errors import InputError
from deepscope.formats.dataset import DatasetInfo, ObjectiveInfo, flat_field_ids
from deepscope.locking import directory_lock

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

log = logging.getLogger("deepscope.acquire")

__all__ = ["AcquisitionProgress", "AcquisitionSummary", "run_acquisition"]


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


def _flat_pass(
    run: PassRunner,
    optics: Optics,
    exposure_ms: float,
    focus_of: Callable[[float, float], float],
) -> None:
    """Blank frames of the objective in the light path, at *exposure_ms* and half of it."""
    ff = run.plan.flat_field
    if ff is None:
        return
    for fid, exposure in zip(
        flat_field_ids(optics.name), (exposure_ms, exposure_ms / 2), strict=True
    ):
        spec = FieldSpec(
            field_id=fid, role="flat", objective=optics.name, x_um=ff.x_um, y_um=ff.y_um
        )
        run.run_pass(
            [spec],
            optics,
            exposure,
            ZStack(),
            lambda f: (f.x_um, f.y_um),
            focus_of,
            False,
            ff.frames,
        )


def _objective_info(scope: Scope, profile: MicroscopeProfile, name: str) -> Optics:
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
    return Optics(name, info, (width * px, height * px))


def _library_versions() -> dict[str, str]:
    """Versions of the libraries on the acquisition path, for ``dataset.json``."""
    out = {}
    for name in ("pycromanager", "pymmcore-plus", "pymmcore", "numpy", "tifffile", "ome-types"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def check_limits(
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
    core: CMMCorePlus | Scope,
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
    with contextlib.ExitStack() as stack:
        stack.enter_context(directory_lock(out_dir))  # before the turret or any stage moves
        scope = core if isinstance(core, Scope) else stack.enter_context(python_scope(core))
        saved_roi = scope.roi() if plan.camera_roi is not None else None
        if saved_roi is not None:  # put back the ROI the plan replaces
            stack.callback(scope.restore_roi, saved_roi)
        return _run_plan(
            plan, Path(out_dir), scope, profile, resume, pause_for_oil, progress, cancel
        )


def _run_plan(
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
    DatasetWriter.check(out_dir, plan.plan_hash(), resume=resume)
    for spec in (plan.targets, plan.tiles):  # the camera refuses an exposure it cannot take
        scope.set_exposure(spec.exposure_ms)
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
    check_limits(plan, profile, tiles, focus_z)
    info = DatasetInfo(
        software_version=__version__,
        versions=_library_versions(),
        created=now_iso(),
        tile_objective=tile_optics.spec,
        target_objective=target_optics.spec,
        calibration=profile.calibration,
        calibrated=profile.calibrated,
        plan=plan.model_dump(mode="json"),
        plan_hash=plan.plan_hash(),
        profile=profile.model_dump(mode="json"),
        backend="python" if scope.java_port is None else f"java:{scope.java_port}",
    )
    writer = DatasetWriter.open(out_dir, info, resume=resume)
    run = PassRunner(plan, writer, scope, profile, progress, cancel)
    skipped = len(run.done_before)
    n_targets = len(plan.targets.centres_um) or plan.targets.count
    n_flats = 4 if plan.flat_field is not None else 0
    run.total = len(tiles) + n_targets + n_flats
    cal = profile.calibration
    af = plan.autofocus
    cancelled = False
    try:
        # -- pass 1: tiles ---------------------------------------------------------------------
        scope.set_objective(profile.objective_group, tile_optics.name)
        scope.set_exposure(plan.tiles.exposure_ms)
        focus_of: Callable[[float, float], float] = lambda x, y: focus_z  # noqa: E731
        if af.mode == "focus_map" and any(t.field_id not in run.done_before for t in tiles):
            run.check_space(len(plan.tiles.z.offsets_um()))  # before the map's z scans
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
        _flat_pass(run, tile_optics, plan.tiles.exposure_ms, focus_of)
        # -- choose the target fields ----------------------------------------------------------
        centres = list(plan.targets.centres_um)
        if plan.targets.count:
            saved = writer.saved_targets()
            if saved is None:
                accept = (
                    content_check(
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
        run.total = len(tiles) + len(targets) + n_flats
        # -- oil, then pass 2: targets ----------------------------------------------------------
        if any(t.field_id not in run.done_before for t in targets):
            run.check_space(len(plan.targets.z.offsets_um()))  # before asking for oil
            run.phase = "oil"
            run.report()
            if pause_for_oil is not None and not pause_for_oil():
                raise CancelledError
            run.phase = "targets"
            focus_near = tile_focus(writer, focus_of)
            scope.set_objective(profile.objective_group, target_optics.name)
            scope.set_exposure(plan.targets.exposure_ms)

            def target_focus(x: float, y: float) -> float:
                return focus_near(x + cal.dx_um, y + cal.dy_um) + cal.dz_um

            _flat_pass(run, target_optics, plan.targets.exposure_ms, target_focus)
            run.run_pass(
                targets,
                target_optics,
                plan.targets.exposure_ms,
                plan.targets.z,
                lambda f: (f.x_um - cal.dx_um, f.y_um - cal.dy_um),
                target_focus,
                af.mode == "per_field",
                plan.targets.averages,
            )
        run.phase = "done"
        run.report()
    except CancelledError:
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
