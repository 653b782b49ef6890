"""``register_dataset``: a dataset (or a folder of OME-TIFFs) in, a pairs directory out."""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tqdm import tqdm

from deepscope.atomic import fsync_dir, remove_partials
from deepscope.errors import InputError
from deepscope.formats.pairs import (
    PAIRS_NAME,
    IntensityMatch,
    Pair,
    PairSet,
    Transform,
    save_pairset,
)
from deepscope.locking import locks_directory
from deepscope.ometiff import ImageMeta, read_ome_tiff, write_ome_tiff
from model.registration import align, qc
from model.registration.flatfield import FlatField
from model.registration.focus import best_focus_index, to_gray
from model.registration.intensity import apply_match, fit_match
from model.registration.pairing import (
    FLAT_SIGMA_PX,
    Located,
    Rejection,
    Thresholds,
    TileSet,
    collapse_stack,
    cut_pair,
    final_transform,
    fit_common,
    locate_field,
)
from model.registration.provenance import at_plane, pair_meta
from model.registration.sources import FieldEntry, Inputs, open_inputs
from model.registration.splits import assign_splits
from model.registration.stitch import stitch_tiles

log = logging.getLogger("deepscope.registration")

PAIRS_SUBDIR = "pairs"
CACHE_SUBDIR = ".cache"
#: Fewer accepted fields than this: each keeps its own rotation and scale.
MIN_FIELDS_FOR_COMMON = 3


class RegistrationOptions(BaseModel):
    """Settings of ``deepscope register``."""

    model_config = ConfigDict(frozen=True)

    edof: bool = Field(True, description="fuse the 100x z-stack (wavelet EDOF); else best slice")
    flat_field: bool = Field(
        True, description="correct each objective with its blank frames, where the dataset has them"
    )
    match_intensity: bool = Field(
        True, description="fit and apply a per-channel gain and offset taking hr to lr intensities"
    )
    min_ncc: float = Field(0.5, ge=-1.0, le=1.0, description="lowest accepted NCC")
    seed: int = Field(0, description="seed of the train/val/test split")
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    search_radius_um: float = Field(25.0, gt=0, description="search window around the prior")
    max_stage_error_um: float = Field(
        25.0, gt=0, description="largest tile stage error credited by the stitching"
    )
    min_texture: float = Field(
        0.008, ge=0, description="lowest texture (std of the flat-fielded 100x field)"
    )
    min_focus_ratio: float = Field(
        0.8, ge=0, description="lowest 100x/40x sharpness ratio on the 40x grid"
    )
    max_residual_px: float = Field(
        1.5, gt=0, description="largest RMS (40x px) between a field's own fit and the final"
    )
    max_scale_error: float = Field(0.05, gt=0, description="largest deviation from nominal")
    min_crop_px: int = Field(32, ge=8, description="smallest 40x crop side")
    overview_pairs: int = Field(3, ge=0, description="pairs shown in qc_overview.png")
    common_similarity: bool = Field(
        True, description="one rotation and scale for all fields (they belong to the objectives)"
    )

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f < 0 for f in v) or not math.isclose(sum(v), 1.0, abs_tol=1e-6):
            raise ValueError(f"split fractions {v} must be >= 0 and sum to 1")
        return v


class RegistrationSummary(BaseModel):
    """What ``register_dataset`` produced."""

    model_config = ConfigDict(frozen=True)

    out_dir: str
    source: str
    fields: int
    accepted: int
    rejected: int
    rejections: dict[str, int]
    splits: dict[str, int]
    scale: float
    common_rotation_deg: float | None
    common_scale: float | None
    stitch_edges: int
    stitch_edges_rejected: int
    seconds: float
    seconds_per_field: float
    timings_s: dict[str, float] = Field(
        default_factory=dict,
        description="tiles_and_stitching, locate (pass 1), common_fit, finish (pass 2), reports",
    )


def _white_level(dtype: str, peak: float) -> float:
    """White level of stored intensities: the dtype's, or the smallest bit depth holding *peak*."""
    if dtype == "uint8":
        return 255.0
    if dtype == "uint16":
        for bits in (8, 10, 12, 14, 16):
            if peak <= 2**bits - 1:
                return float(2**bits - 1)
    return max(1.0, float(peak))


def _scale_fraction(ratio: float) -> Fraction:
    frac = Fraction(ratio).limit_denominator(8)
    if not math.isclose(float(frac), ratio, rel_tol=2e-3):
        raise InputError(
            f"pixel size ratio {ratio:.4f} of tiles to targets is not a simple fraction "
            "(like 2.5); lr/hr grids cannot be matched exactly"
        )
    return frac


def _flat_field(inputs: Inputs, role: str) -> FlatField | None:
    """The flat field of the tiles' or the targets' objective, if the inputs hold its frames."""
    if role not in inputs.flats:
        return None
    full, half = (read_ome_tiff(e.path)[0][0] for e in inputs.flats[role])
    return FlatField.from_frames(full, half)


def _load_tiles(
    inputs: Inputs, max_shift_px: float, flat_field: FlatField | None = None
) -> TileSet:
    images, grays, flats, sources = [], [], [], []
    peak = 0.0
    for entry in tqdm(inputs.tiles, desc="tiles", unit="tile", leave=False):
        stack, meta = read_ome_tiff(entry.path)
        peak = max(peak, float(stack.max()))
        k = best_focus_index(stack) if stack.shape[0] > 1 else 0
        img = stack[k]
        sources.append(at_plane(meta, k))
        if flat_field is not None:
            img = flat_field.apply(img)
        images.append(img)
        grays.append(to_gray(img))
        flats.append(align.flatten(grays[-1], FLAT_SIGMA_PX))
    p = inputs.tile_pixel_um
    centres = np.array([(e.x_um, e.y_um) for e in inputs.tiles])
    # flat-fielded: vignetting would otherwise correlate (or anti-correlate) the overlaps
    mosaic = stitch_tiles(flats, centres / p, max_shift_px=max_shift_px)
    return TileSet(
        images,
        flats,
        centres,
        mosaic,
        mosaic.compose(grays),
        p,
        [e.field_id for e in inputs.tiles],
        peak,
        sources,
    )


@dataclass
class Accepted:
    """An accepted field: its files (relative to the pairs directory) and measurements."""

    lr: str
    hr: str
    ncc: float
    residual: float
    to_mosaic: np.ndarray
    corners: np.ndarray
    metrics: dict[str, Any]
    intensity: IntensityMatch | None


def _finish(
    loc: Located,
    image: np.ndarray,
    source: ImageMeta,
    entry: FieldEntry,
    common: tuple[float, float] | None,
    tiles: TileSet,
    pairs_dir: Path,
    frac: Fraction,
    opts: RegistrationOptions,
    white: float,
    dtype: np.dtype[Any],
    samples: list[tuple[str, np.ndarray, np.ndarray]],
) -> Accepted | Rejection:
    """Final transform, crop, warp and write one located field (*source*: its file's metadata)."""
    fin = final_transform(loc, tiles, common, opts.max_residual_px)
    if isinstance(fin, Rejection):
        return fin
    sim, ecc, residual = fin
    if ecc < opts.min_ncc:
        return Rejection(f"NCC too low: {ecc:.2f} < {opts.min_ncc} after refinement", loc.metrics)
    scale = float(frac)
    cut = cut_pair(image, sim, tiles, loc.tile, scale, frac.denominator, opts.min_crop_px, white)
    if isinstance(cut, str):
        return Rejection(cut, loc.metrics)
    match = fit_match(cut.lr, cut.hr) if opts.match_intensity else None
    hr = cut.hr if match is None else apply_match(cut.hr, match, white)
    th, tw = tiles.mosaic.tile_shape
    cx_um, cy_um = tiles.centres_um[loc.tile]
    nh, nw = cut.lr.shape[:2]
    # slide position of the crop centre, through its tile's stage position
    x_um = cx_um + (cut.crop_xy[0] + (nw - 1) / 2 - (tw - 1) / 2) * tiles.pixel_um
    y_um = cy_um + (cut.crop_xy[1] + (nh - 1) / 2 - (th - 1) / 2) * tiles.pixel_um
    ann = {
        "field_id": entry.field_id,
        "tile_id": tiles.ids[loc.tile],
        "target_focus": str(loc.metrics["focus"]),  # how hr was made of the z-stack
    }
    lr_rel = f"{PAIRS_SUBDIR}/{entry.field_id}_lr.ome.tif"
    hr_rel = f"{PAIRS_SUBDIR}/{entry.field_id}_hr.ome.tif"
    root = pairs_dir.parent
    integer = np.issubdtype(dtype, np.integer)
    lr_source = tiles.sources[loc.tile]
    write_ome_tiff(
        root / lr_rel,
        (np.rint(cut.lr) if integer else cut.lr).astype(dtype),
        pair_meta(lr_source, tiles.pixel_um, (x_um, y_um), "lr", ann),
    )
    write_ome_tiff(
        root / hr_rel,
        (np.rint(hr) if integer else hr).astype(dtype),
        pair_meta(source, tiles.pixel_um / scale, (x_um, y_um), "hr", ann),
    )
    if len(samples) < opts.overview_pairs:
        samples.append((entry.field_id, to_gray(cut.lr), to_gray(hr)))
    to_mosaic = align.compose(align.translation(*tiles.mosaic.positions[loc.tile]), sim)
    h, w = loc.hr_shape
    corners = align.apply(to_mosaic, np.array([[0, 0], [w, 0], [w, h], [0, h]], float))
    loc.metrics["to_tile"] = sim.round(8).tolist()
    return Accepted(lr_rel, hr_rel, cut.ncc, residual, to_mosaic, corners, loc.metrics, match)


@locks_directory("out_dir")
def register_dataset(
    dataset_dir: str | Path,
    out_dir: str | Path,
    options: RegistrationOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RegistrationSummary:
    """Register every 100x field of *dataset_dir* onto its stitched 40x tiles.

    Writes ``pairs.json``, ``pairs/<id>_lr.ome.tif``/``_hr.ome.tif`` and the QC report
    (``qc.json``, ``qc.md``, ``qc_overview.png``) into *out_dir*. *dataset_dir* is a deepscope
    dataset or a folder of OME-TIFFs (see :mod:`model.registration.sources`). *progress* is
    called with ``(steps done, steps total)``, two steps per field (locate, then finish).
    """
    opts = options or RegistrationOptions()
    t0 = time.perf_counter()
    inputs = open_inputs(dataset_dir)
    out = Path(out_dir)
    pairs_dir = out / PAIRS_SUBDIR
    pairs_dir.mkdir(parents=True, exist_ok=True)
    remove_partials(out)
    p_lr, p_hr = inputs.tile_pixel_um, inputs.target_pixel_um
    frac = _scale_fraction(p_lr / p_hr)
    scale = float(frac)
    flat_tiles, flat_targets = (
        _flat_field(inputs, role) if opts.flat_field else None for role in ("tile", "target")
    )
    tiles = _load_tiles(inputs, opts.max_stage_error_um / p_lr, flat_tiles)
    timings = {"tiles_and_stitching": time.perf_counter() - t0}
    dtype = np.dtype(inputs.tiles[0].dtype or "uint16")
    white = _white_level(str(dtype), tiles.raw_peak)
    tiles.images = [np.clip(im, 0, white) for im in tiles.images]
    limits = Thresholds(
        min_ncc=opts.min_ncc,
        min_texture=opts.min_texture,
        min_focus_ratio=opts.min_focus_ratio,
        max_scale_error=opts.max_scale_error,
        min_crop_px=opts.min_crop_px,
        search_radius_px=math.ceil(opts.search_radius_um / p_lr),
    )
    dx, dy = inputs.offset_um
    total = len(inputs.targets)
    steps = 2 * total
    found: dict[str, Located] = {}
    sources: dict[str, ImageMeta] = {}  # each located field's metadata at the plane it stands for
    outcome: dict[str, Rejection | Accepted] = {}
    cache = out / CACHE_SUBDIR  # collapsed 100x images between the passes; a crash's leftovers
    shutil.rmtree(cache, ignore_errors=True)  # are cleared here
    cache.mkdir()
    for done, entry in enumerate(tqdm(inputs.targets, desc="locate", unit="field"), start=1):
        stack, meta = read_ome_tiff(entry.path)
        if stack.shape[-1] != inputs.channels:
            raise InputError(
                f"{entry.path}: {stack.shape[-1]} channels, the tiles have {inputs.channels}"
            )
        if flat_targets is not None:
            stack = np.clip(flat_targets.apply(stack), 0, white)
        image, how, index = collapse_stack(stack, opts.edof)
        res = locate_field(image, entry.x_um + dx, entry.y_um + dy, p_hr, tiles, limits)
        res.metrics["focus"] = how
        if isinstance(res, Located):
            found[entry.field_id] = res
            sources[entry.field_id] = at_plane(meta, index)
            np.save(cache / f"{entry.field_id}.npy", image)
        else:
            outcome[entry.field_id] = res
        if progress is not None:
            progress(done, steps)
    timings["locate"] = time.perf_counter() - t0 - sum(timings.values())
    common = None
    if opts.common_similarity and len(found) >= MIN_FIELDS_FOR_COMMON:
        common = fit_common(list(found.values()), tiles)
        log.info("common rotation %.4f deg, scale %.6f", *common)
    timings["common_fit"] = time.perf_counter() - t0 - sum(timings.values())
    samples: list[tuple[str, np.ndarray, np.ndarray]] = []
    _withdraw_results(out)  # the pair files about to be replaced no longer match them
    for done, entry in enumerate(tqdm(inputs.targets, desc="pairs", unit="field"), start=total + 1):
        loc = found.get(entry.field_id)
        if loc is not None:
            outcome[entry.field_id] = _finish(
                loc,
                np.load(cache / f"{entry.field_id}.npy"),
                sources[entry.field_id],
                entry,
                common,
                tiles,
                pairs_dir,
                frac,
                opts,
                white,
                dtype,
                samples,
            )
            (cache / f"{entry.field_id}.npy").unlink()
        if progress is not None:
            progress(done, steps)
    shutil.rmtree(cache)
    timings["finish"] = time.perf_counter() - t0 - sum(timings.values())
    accepted_ids = [fid for fid, r in outcome.items() if isinstance(r, Accepted)]
    splits = assign_splits(accepted_ids, opts.split, opts.seed)
    splits.update(assign_splits([f for f in outcome if f not in splits], opts.split, opts.seed))
    pairs: list[Pair] = []
    for entry in inputs.targets:
        fin = outcome[entry.field_id]
        if isinstance(fin, Accepted):
            tx, ty, rot, s = align.similarity_params(fin.to_mosaic)
            mat = fin.to_mosaic
            pair = Pair(
                pair_id=entry.field_id,
                field_id=entry.field_id,
                split=splits[entry.field_id],
                accepted=True,
                lr=fin.lr,
                hr=fin.hr,
                ncc=fin.ncc,
                residual=fin.residual,
                transform=Transform(
                    tx_px=tx,
                    ty_px=ty,
                    rotation_deg=rot,
                    scale=s,
                    matrix=((mat[0, 0], mat[0, 1], mat[0, 2]), (mat[1, 0], mat[1, 1], mat[1, 2])),
                ),
                intensity=fin.intensity,
                extra=fin.metrics,
            )
        else:
            pair = Pair(
                pair_id=entry.field_id,
                field_id=entry.field_id,
                split=splits[entry.field_id],
                accepted=False,
                reason=fin.reason,
                extra=fin.metrics,
            )
        pairs.append(pair)
    pairset = PairSet(
        scale=scale,
        channels=inputs.channels,
        max_value=white,
        lr_pixel_size_um=p_lr,
        hr_pixel_size_um=p_lr / scale,
        source=str(inputs.source),
        edof=opts.edof,
        flat_field={
            role: round(ff.falloff(), 4)
            for role, ff in (("tile", flat_tiles), ("target", flat_targets))
            if ff is not None
        },
        seed=opts.seed,
        pairs=pairs,
    )
    edges = tiles.mosaic.edges
    stitching = {
        "edges": len(edges),
        "rejected_edges": sum(not e.kept for e in edges),
        "tiles": {
            tid: [round(float(v), 3) for v in pos]
            for tid, pos in zip(tiles.ids, tiles.mosaic.positions, strict=True)
        },
        "rejected": [
            {"tiles": [tiles.ids[e.i], tiles.ids[e.j]], "reason": e.reason}
            for e in edges
            if not e.kept
        ],
    }
    _overview(out, outcome, tiles, inputs, samples)
    model = {
        "common_rotation_deg": None if common is None else common[0],
        "common_scale_vs_nominal": None if common is None else common[1] * scale,
    }
    qc_summary = qc.write_reports(out, pairset, stitching, model, opts.model_dump(mode="json"))
    _remove_stale_pairs(pairs_dir, pairset)
    save_pairset(out, pairset)  # last: a pairs directory is complete once pairs.json is there
    seconds = time.perf_counter() - t0
    timings["reports"] = seconds - sum(timings.values())
    return RegistrationSummary(
        out_dir=str(out),
        source=str(inputs.source),
        fields=total,
        accepted=qc_summary["accepted"],
        rejected=qc_summary["rejected"],
        rejections=qc_summary["rejections"],
        splits=dict(Counter(splits.values())),
        scale=scale,
        common_rotation_deg=None if common is None else round(common[0], 5),
        common_scale=None if common is None else round(common[1] * scale, 7),
        stitch_edges=stitching["edges"],
        stitch_edges_rejected=stitching["rejected_edges"],
        seconds=round(seconds, 3),
        seconds_per_field=round(seconds / max(total, 1), 3),
        timings_s={k: round(v, 3) for k, v in timings.items()},
    )


def _withdraw_results(out: Path) -> None:
    """Remove ``pairs.json`` and the QC report of an earlier run before its pair files change.

    A run killed from here on leaves no ``pairs.json``: the directory then reads as unfinished
    instead of describing pair files that the new run has already replaced.
    """
    for name in (PAIRS_NAME, qc.QC_JSON, qc.QC_MD, qc.QC_PNG):
        (out / name).unlink(missing_ok=True)
    fsync_dir(out)


def _remove_stale_pairs(pairs_dir: Path, pairset: PairSet) -> None:
    """Delete files in *pairs_dir* that *pairset* does not name (pairs of an earlier run)."""
    keep = {
        Path(rel).name
        for p in pairset.accepted()
        for rel in (p.lr, p.hr, p.truth)
        if rel is not None
    }
    stale = [f for f in pairs_dir.iterdir() if f.is_file() and f.name not in keep]
    for f in stale:
        f.unlink()
    if stale:
        log.info("removed %d pair file(s) of an earlier run", len(stale))
        fsync_dir(pairs_dir)


def _overview(
    out: Path,
    outcome: dict[str, Rejection | Accepted],
    tiles: TileSet,
    inputs: Inputs,
    samples: list[tuple[str, np.ndarray, np.ndarray]],
) -> None:
    footprints = []
    dx, dy = inputs.offset_um
    for entry in inputs.targets:
        res = outcome[entry.field_id]
        if isinstance(res, Accepted):
            corners = res.corners
        else:
            cx, cy = tiles.slide_to_mosaic(entry.x_um + dx, entry.y_um + dy)
            _, h, w = entry.shape
            hw = w * entry.pixel_size_um / inputs.tile_pixel_um / 2
            hh = h * entry.pixel_size_um / inputs.tile_pixel_um / 2
            corners = np.array(
                [[cx - hw, cy - hh], [cx + hw, cy - hh], [cx + hw, cy + hh], [cx - hw, cy + hh]]
            )
        footprints.append((corners, isinstance(res, Accepted), entry.field_id))
    qc.write_overview(out, tiles.mosaic_gray, footprints, samples)
