"""What registration reads: a deepscope dataset, or a folder of OME-TIFFs acquired elsewhere.

A **dataset** (``dataset.json`` present) lists its tiles (role ``tile``, 40x) and targets
(role ``target``, 100x z-stacks) in the manifest; the calibrated offset of the target
objective is taken from ``dataset.json``.

A **folder of OME-TIFFs** (no ``dataset.json``; ``*.ome.tif``/``*.ome.tiff`` directly inside)
is imported as follows: every file must carry a physical pixel size and per-plane stage
positions (OME ``Plane PositionX/PositionY``, in um); files are grouped by objective (nominal
magnification when present, else pixel size); exactly two groups must exist, the lower
magnification (larger pixel size) are the tiles, the other the targets. The objective offset
is taken as zero, so the search window (``search_radius_um``) must cover it, and there are no
flat-field frames.

For both, a field's stage position is the mean read-back position of its planes and the
stage position is the field centre: pixel ``(col, row)`` of a ``W x H`` image lies at
``x_um + (col - (W - 1) / 2) * pixel_size_um``, ``y_um + (row - (H - 1) / 2) * pixel_size_um``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from deepscope.errors import InputError
from deepscope.formats.dataset import INFO_NAME, flat_field_ids, open_dataset
from deepscope.ometiff import ome_pixels


@dataclass(frozen=True)
class FieldEntry:
    """One image file with what registration needs to know before reading its pixels."""

    field_id: str
    path: Path
    x_um: float
    y_um: float
    pixel_size_um: float
    shape: tuple[int, int, int]
    channels: int
    dtype: str
    magnification: float | None = None


@dataclass(frozen=True)
class Inputs:
    """Tiles and targets to register, with the objective offset (um) between them."""

    source: Path
    kind: str
    tiles: list[FieldEntry]
    targets: list[FieldEntry]
    offset_um: tuple[float, float]
    flats: dict[str, tuple[FieldEntry, FieldEntry]] = field(default_factory=dict)
    """Blank frames (full, half exposure) by role ("tile", "target"), where acquired."""

    @property
    def tile_pixel_um(self) -> float:
        """Pixel size of the tiles (all tiles share it)."""
        return self.tiles[0].pixel_size_um

    @property
    def target_pixel_um(self) -> float:
        """Pixel size of the targets (all targets share it)."""
        return self.targets[0].pixel_size_um

    @property
    def channels(self) -> int:
        """Channels per pixel, the same in every file."""
        return self.tiles[0].channels


def read_entry(path: Path, field_id: str) -> FieldEntry:
    """Read one OME-TIFF's header (not its pixels); InputError names what is missing."""
    try:
        with tifffile.TiffFile(path) as tf:
            xml = tf.ome_metadata
            dtype = str(tf.series[0].dtype) if tf.series else ""
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise InputError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})") from exc
    if not xml:
        raise InputError(f"{path}: not an OME-TIFF (no OME-XML metadata)")
    ome, px, _ = ome_pixels(path, xml)
    xs = [p.position_x for p in px.planes if p.position_x is not None]
    ys = [p.position_y for p in px.planes if p.position_y is not None]
    if not xs or not ys or not all(map(math.isfinite, xs + ys)):
        raise InputError(f"{path}: no stage position (OME Plane PositionX/PositionY) is recorded")
    channels = px.channels[0].samples_per_pixel if px.channels else None
    if channels is None:
        channels = px.size_c
    magnification = None
    if ome.instruments and ome.instruments[0].objectives:
        magnification = ome.instruments[0].objectives[0].nominal_magnification
    return FieldEntry(
        field_id=field_id,
        path=path,
        x_um=float(np.mean(xs)),
        y_um=float(np.mean(ys)),
        pixel_size_um=float(px.physical_size_x or 0.0),  # checked > 0 by ome_pixels
        shape=(px.size_z, px.size_y, px.size_x),
        channels=int(channels),
        dtype=dtype,
        magnification=magnification,
    )


def _check_consistent(tiles: list[FieldEntry], targets: list[FieldEntry], where: Path) -> None:
    if not tiles:
        raise InputError(f"{where}: no 40x tile fields; registration needs tiles and targets")
    if not targets:
        raise InputError(f"{where}: no 100x target fields; registration needs two objectives")
    ref = tiles[0]
    for group, name in ((tiles, "tile"), (targets, "target")):
        for e in group:
            if e.channels != ref.channels:
                raise InputError(
                    f"{e.path}: {e.channels} channel(s), but {ref.path} has {ref.channels}"
                )
            if not math.isclose(e.pixel_size_um, group[0].pixel_size_um, rel_tol=1e-3):
                raise InputError(
                    f"{e.path}: {name} pixel size {e.pixel_size_um} um differs from "
                    f"{group[0].path} ({group[0].pixel_size_um} um)"
                )
    if tiles[0].pixel_size_um <= targets[0].pixel_size_um:
        raise InputError(
            f"{where}: tile pixel size {tiles[0].pixel_size_um} um is not larger than the "
            f"target pixel size {targets[0].pixel_size_um} um"
        )
    for e in tiles[1:]:
        if e.shape[1:] != ref.shape[1:]:
            raise InputError(f"{e.path}: tile size {e.shape[1:]} differs from {ref.path}")


def _from_dataset(root: Path) -> Inputs:
    ds = open_dataset(root)
    tiles = [read_entry(ds.path_of(r), r.field_id) for r in ds.done("tile")]
    targets = [read_entry(ds.path_of(r), r.field_id) for r in ds.done("target")]
    _check_consistent(tiles, targets, root)
    cal = ds.info.calibration
    flats = {}
    done = {r.field_id: r for r in ds.done("flat")}
    for role, objective in (("tile", ds.info.tile_objective), ("target", ds.info.target_objective)):
        full, half = (done.get(i) for i in flat_field_ids(objective.name))
        if full is not None and half is not None:
            flats[role] = (
                read_entry(ds.path_of(full), full.field_id),
                read_entry(ds.path_of(half), half.field_id),
            )
    return Inputs(root, "dataset", tiles, targets, (cal.dx_um, cal.dy_um), flats)


def _field_id(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _from_folder(root: Path) -> Inputs:
    files = sorted(p for p in root.iterdir() if p.name.lower().endswith((".ome.tif", ".ome.tiff")))
    if not files:
        raise InputError(f"{root}: neither a deepscope dataset ({INFO_NAME}) nor OME-TIFFs")
    entries = [read_entry(p, _field_id(p)) for p in files]
    groups: dict[float, list[FieldEntry]] = {}
    for e in entries:
        key = e.magnification or round(1.0 / e.pixel_size_um, 2)
        groups.setdefault(float(key), []).append(e)
    if len(groups) < 2:
        raise InputError(
            f"{root}: all {len(entries)} images come from one objective "
            f"(pixel size {entries[0].pixel_size_um} um); need 40x tiles and 100x targets"
        )
    if len(groups) > 2:
        raise InputError(
            f"{root}: images from {len(groups)} objectives (pixel sizes "
            f"{sorted({e.pixel_size_um for e in entries})} um); expected exactly two"
        )
    low, high = sorted(groups)
    _check_consistent(groups[low], groups[high], root)
    return Inputs(root, "folder", groups[low], groups[high], (0.0, 0.0))


def open_inputs(directory: str | Path) -> Inputs:
    """Tiles and targets of a dataset directory or of a folder of OME-TIFFs (see module doc)."""
    root = Path(directory)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    if (root / INFO_NAME).is_file():
        return _from_dataset(root)
    return _from_folder(root)
