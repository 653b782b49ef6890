"""A paired dataset snapped on the simulated microscope, with its registration ground truth.

Written with the acquisition's own :class:`~acquire.storage.DatasetWriter`. Used by the
registration tests, the GUI's screenshots and ``bench/bench_registration.py`` so that accuracy
is measured against what the simulator knows: every field's
:class:`~simulators.microscope.SnapTruth` maps its pixels to slide coordinates, so the true map
of a 100x pixel into a 40x tile's pixels is ``tile_affine^-1 . target_affine``. Fields are
snapped through the Micro-Manager core (stage moves, objective preset, camera); the files hold
the stage positions read back from the core (which, as on a real open-loop stage, differ from
where the stage really went).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy import ndimage

from acquire.layout import FieldSpec
from acquire.storage import DatasetWriter
from deepscope import __version__
from deepscope.formats.dataset import (
    Calibration,
    DatasetInfo,
    ObjectiveInfo,
    Role,
    flat_field_ids,
)
from deepscope.ometiff import ImageMeta, PlaneMeta
from simulators.core import SimulatedCore, make_core, microscope_of
from simulators.microscope import ObjectiveTruth, SnapTruth
from simulators.specimen import TissueSpecimen


@dataclass
class SimulatedDataset:
    """A dataset directory plus the ground truth of every field in it."""

    path: Path
    truths: dict[str, SnapTruth]
    objectives: dict[str, ObjectiveTruth]
    tiles: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)


def _density_grid(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[-3000:3000:4.0, -3000:3000:4.0]
    return xs, ys, TissueSpecimen(seed).tissue_density(xs, ys)


def tissue_region(seed: int, size_um: float) -> tuple[float, float]:
    """Centre of the square region of *size_um* with the most tissue (searched on a grid)."""
    xs, ys, dens = _density_grid(seed)
    k = round(size_um / 4.0)
    cover = ndimage.uniform_filter(dens, size=k)
    cover[:k, :] = cover[-k:, :] = cover[:, :k] = cover[:, -k:] = -1.0  # whole regions only
    iy, ix = np.unravel_index(int(np.argmax(cover)), cover.shape)
    return float(xs[iy, ix]), float(ys[iy, ix])


def glassy_region(seed: int, size_um: float, hole_um: float) -> tuple[float, float, float, float]:
    """A region centre mostly covered by tissue that holds a bare-glass spot, and that spot.

    Returns ``(region_x, region_y, glass_x, glass_y)`` in um, searched deterministically.
    """
    xs, ys, dens = _density_grid(seed)
    glass = ndimage.maximum_filter(dens, size=max(1, round(hole_um / 4.0))) == 0
    tissue = ndimage.uniform_filter(dens, size=round(size_um / 4.0))
    score = np.where(glass, tissue, -1.0)
    iy, ix = np.unravel_index(int(np.argmax(score)), score.shape)
    gx, gy = float(xs[iy, ix]), float(ys[iy, ix])
    # put the glass spot off-centre, a quarter of the region from the middle
    return gx + size_um / 4, gy, gx, gy


def make_simulated_dataset(
    out_dir: str | Path,
    *,
    seed: int = 0,
    grid: tuple[int, int] = (3, 3),
    overlap: float = 0.15,
    sensor_px: int = 256,
    n_targets: int = 20,
    z_slices: int = 5,
    z_step_um: float = 0.4,
    centre_um: tuple[float, float] = (0.0, 0.0),
    min_tissue: float = 0.0,
    extra_targets_um: list[tuple[float, float]] | None = None,
    calibration_error_um: tuple[float, float] = (0.4, -0.3),
    defocus_um: Mapping[int, float] | None = None,
    record_error_um: Mapping[int, tuple[float, float]] | None = None,
    flat_field_um: tuple[float, float] | None = None,
    flat_frames: int = 4,
    core: SimulatedCore | None = None,
) -> SimulatedDataset:
    """Snap a tile grid at 40x and *n_targets* 100x z-stacks inside it; write a dataset.

    Parameters
    ----------
    out_dir
        Dataset directory to create.
    seed
        Seeds the simulator (imperfections on) and the target placement.
    grid
        Tile rows and columns.
    overlap
        Fractional tile overlap.
    sensor_px
        Square sensor size for both objectives.
    n_targets
        100x fields drawn uniformly inside the tiled area.
    z_slices, z_step_um
        100x focus stack around the 100x focal plane.
    centre_um
        Centre of the tiled region.
    min_tissue
        Drawn fields cover at least this fraction of tissue.
    extra_targets_um
        More 100x field centres (slide um), after the drawn ones.
    calibration_error_um
        Error added to the true objective offset written as the dataset's calibration.
    defocus_um
        Target index -> extra defocus of its stack (um).
    record_error_um
        Target index -> error added to the stage position recorded in its file (um).
    flat_field_um
        Bare-glass stage position where both objectives take their blank frames (at the
        exposure and at half of it, *flat_frames* averaged each), as the plan's ``flat_field``
        does; None: no flat-field frames.
    flat_frames
        Exposures averaged per blank frame.
    core
        A simulated core to use (default: ``make_core(seed, sensor=...)``).
    """
    core = core or make_core(seed=seed, sensor=(sensor_px, sensor_px))
    scope = microscope_of(core)
    root = Path(out_dir)
    truth_obj = scope.objectives
    lo, hi = truth_obj["40x"], truth_obj["100x"]
    cal = Calibration(
        dx_um=hi.offset_x_um - lo.offset_x_um + calibration_error_um[0],
        dy_um=hi.offset_y_um - lo.offset_y_um + calibration_error_um[1],
        dz_um=hi.parfocal_z_um - lo.parfocal_z_um,
    )
    specs = {n: scope.spec(n) for n in ("40x", "100x")}
    infos = {
        n: ObjectiveInfo(
            name=n,
            magnification=s.magnification,
            na=s.na,
            immersion=s.immersion,
            pixel_size_um=scope.nominal_pixel_size_um(n),
        )
        for n, s in specs.items()
    }
    info = DatasetInfo(
        software_version=__version__,
        created=datetime.now(UTC).isoformat(),
        tile_objective=infos["40x"],
        target_objective=infos["100x"],
        calibration=cal,
        backend="simulated",
    )
    writer = DatasetWriter.open(root, info, resume=False)
    core.setExposure(10.0)
    truths: dict[str, SnapTruth] = {}
    out = SimulatedDataset(root, truths, dict(truth_obj))

    def snap_field(
        fid: str,
        role: Role,
        objective: str,
        x: float,
        y: float,
        zs: list[float],
        rec_err: tuple[float, float] = (0.0, 0.0),
        exposure_ms: float = 10.0,
        average: int = 1,
    ) -> None:
        core.setConfig("Objective", objective)
        core.setXYPosition(x, y)
        core.setExposure(exposure_ms)
        planes, frames = [], []
        for z in zs:
            core.setPosition(z)
            shots = []
            for _ in range(average):
                core.snapImage()
                shots.append(core.getImage().astype(np.float32))
            frames.append(np.rint(np.mean(shots, axis=0)).astype(np.uint16))
            rx, ry = core.getXYPosition()
            planes.append(
                PlaneMeta(
                    x_um=rx + rec_err[0],
                    y_um=ry + rec_err[1],
                    z_um=core.getPosition(),
                    exposure_ms=exposure_ms,
                )
            )
        truths[fid] = scope.snap_log[-1 - average * (len(zs) // 2)]
        info_o = infos[objective]
        meta = ImageMeta(
            pixel_size_um=info_o.pixel_size_um,
            z_step_um=z_step_um if len(zs) > 1 else None,
            planes=tuple(planes),
            objective=objective,
            magnification=info_o.magnification,
            na=info_o.na,
            immersion=info_o.immersion,
            annotations={"field_id": fid},
        )
        spec = FieldSpec(field_id=fid, role=role, objective=objective, x_um=x, y_um=y)
        writer.write_field(
            spec, np.stack(frames), meta, stage_xy_um=(x, y), z_um=zs[len(zs) // 2], attempts=1
        )

    if flat_field_um is not None:
        for objective, truth in (("40x", lo), ("100x", hi)):
            for fid, exposure in zip(flat_field_ids(objective), (10.0, 5.0), strict=True):
                fx, fy = flat_field_um
                z = [truth.parfocal_z_um]
                snap_field(fid, "flat", objective, fx, fy, z, (0.0, 0.0), exposure, flat_frames)
        core.setExposure(10.0)
    fov = sensor_px * infos["40x"].pixel_size_um
    pitch = fov * (1 - overlap)
    rows, cols = grid
    for r in range(rows):
        for c in range(cols):
            x = centre_um[0] + (c - (cols - 1) / 2) * pitch
            y = centre_um[1] + (r - (rows - 1) / 2) * pitch
            fid = f"tile_r{r:02d}_c{c:02d}"
            snap_field(fid, "tile", "40x", x, y, [lo.parfocal_z_um])
            out.tiles.append(fid)
    tfov = sensor_px * infos["100x"].pixel_size_um
    half_w = (cols - 1) * pitch / 2 + fov / 2 - tfov / 2 - 3.0
    half_h = (rows - 1) * pitch / 2 + fov / 2 - tfov / 2 - 3.0
    rng = np.random.default_rng([seed, 99])
    drawn: list[tuple[float, float]] = []
    for _ in range(200 * n_targets):
        if len(drawn) == n_targets:
            break
        x = centre_um[0] + rng.uniform(-half_w, half_w)
        y = centre_um[1] + rng.uniform(-half_h, half_h)
        if min_tissue <= 0 or scope.specimen.tissue_fraction(x, y, tfov, tfov) >= min_tissue:
            drawn.append((x, y))
    targets_um = drawn + list(extra_targets_um or [])
    focus = hi.parfocal_z_um
    for i, (tx, ty) in enumerate(targets_um):
        dz = (defocus_um or {}).get(i, 0.0)
        zs = [focus + dz + (k - (z_slices - 1) / 2) * z_step_um for k in range(z_slices)]
        fid = f"target_{i:03d}"
        # the stage goes where the 100x field centre lands on (tx, ty) per the calibration
        snap_field(
            fid,
            "target",
            "100x",
            tx - cal.dx_um,
            ty - cal.dy_um,
            zs,
            (record_error_um or {}).get(i, (0.0, 0.0)),
        )
        out.targets.append(fid)
    core.setConfig("Objective", "40x")
    return out
