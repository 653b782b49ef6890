"""Synthetic registered 40x/100x pairs for the training/evaluation tests (no simulator needed).

The 100x target is a band-limited random texture with sharp disks; the 40x input is the target
blurred (Gaussian PSF) and area-downsampled by 2.5, as a lower-NA objective would see it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest
import torch

from deepscope.formats.pairs import Pair, PairSet, save_pairset
from deepscope.ometiff import ImageMeta, write_ome_tiff

if TYPE_CHECKING:
    from simulators.dataset import SimulatedDataset

MAX_VALUE = 4095.0


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core box, 2 threads spin and run several times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def synthetic_field(
    rng: np.random.Generator, lr_size: int, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """One ``(lr, hr)`` uint16 pair; lr is ``lr_size`` square, hr ``2.5 * lr_size``."""
    hr_size = lr_size * 5 // 2
    noise = rng.normal(size=(hr_size, hr_size, channels)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), 2.0).reshape(hr_size, hr_size, channels)
    tex = 0.5 + 0.25 * tex / (tex.std() + 1e-6)
    for _ in range(12):
        centre = (int(rng.integers(0, hr_size)), int(rng.integers(0, hr_size)))
        colour = tuple(float(v) for v in rng.uniform(0.1, 0.9, channels))
        cv2.circle(tex, centre, int(rng.integers(3, 12)), colour, -1)
    hr = np.clip(tex, 0, 1)
    blurred = cv2.GaussianBlur(hr, (0, 0), 2.5).reshape(hr_size, hr_size, channels)
    lr = cv2.resize(blurred, (lr_size, lr_size), interpolation=cv2.INTER_AREA)
    lr = lr.reshape(lr_size, lr_size, channels)
    return (lr * MAX_VALUE).round().astype(np.uint16), (hr * MAX_VALUE).round().astype(np.uint16)


def save_fields(
    directory: Path,
    fields: list[tuple[str, str, np.ndarray, np.ndarray]],
    *,
    channels: int,
    source: str,
    seed: int,
    truths: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``(pair_id, split, lr, hr)`` fields as OME-TIFFs and ``pairs.json``.

    *truths* (pair id -> noise-free target) are written too and recorded as ``Pair.truth``.
    """
    (directory / "pairs").mkdir(parents=True, exist_ok=True)
    pairs = []
    for i, (pid, split, lr, hr) in enumerate(fields):
        write_ome_tiff(
            directory / "pairs" / f"{pid}_lr.ome.tif", lr, ImageMeta(pixel_size_um=0.185)
        )
        write_ome_tiff(
            directory / "pairs" / f"{pid}_hr.ome.tif", hr, ImageMeta(pixel_size_um=0.074)
        )
        truth = (truths or {}).get(pid)
        if truth is not None:
            write_ome_tiff(
                directory / "pairs" / f"{pid}_truth.ome.tif", truth, ImageMeta(pixel_size_um=0.074)
            )
        pairs.append(
            Pair(
                pair_id=pid,
                field_id=f"f{i:03d}",
                split=split,  # type: ignore[arg-type]
                accepted=True,
                lr=f"pairs/{pid}_lr.ome.tif",
                hr=f"pairs/{pid}_hr.ome.tif",
                truth=None if truth is None else f"pairs/{pid}_truth.ome.tif",
            )
        )
    pairset = PairSet(
        scale=2.5,
        channels=channels,
        max_value=MAX_VALUE,
        lr_pixel_size_um=0.185,
        hr_pixel_size_um=0.074,
        source=source,
        seed=seed,
        pairs=pairs,
    )
    save_pairset(directory, pairset)
    return directory


def write_pairs(
    directory: Path,
    *,
    n_train: int = 4,
    n_val: int = 1,
    n_test: int = 1,
    lr_size: int = 48,
    channels: int = 3,
    seed: int = 0,
) -> Path:
    """Write a pairs directory of synthetic fields; return it."""
    rng = np.random.default_rng(seed)
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    fields = [
        (f"p{i:03d}", split, *synthetic_field(rng, lr_size, channels))
        for i, split in enumerate(splits)
    ]
    return save_fields(directory, fields, channels=channels, source="synthetic", seed=seed)


def write_sim_pairs(
    directory: Path,
    *,
    n_train: int = 8,
    n_val: int = 2,
    n_test: int = 2,
    lr_size: int = 96,
    seed: int = 0,
    spacing_um: float = 60.0,
    truth: bool = False,
    flat_field: bool = False,
) -> Path:
    """Write a pairs directory of perfectly aligned 40x/100x snaps of the simulated slide.

    Without imperfections both objectives image the same area centred on the stage position:
    a centred ``lr_size`` 40x ROI and a ``2.5 * lr_size`` 100x frame cover the same field.
    *truth*: also write each field's noise-free 100x frame (same pose, camera noise off).
    *flat_field*: correct both objectives' frames with blank frames taken on bare glass, as
    registration does by default (raw frames keep the 100x's stronger fall-off: up to 27 % at
    the corner against about 3 % for the central 40x ROI).
    """
    from app.demo import glass_spot
    from model.registration.flatfield import FlatField
    from simulators import make_core, microscope_of

    hr_size = lr_size * 5 // 2
    core = make_core(seed=seed, imperfections=False, sensor=(hr_size, hr_size))
    off = (hr_size - lr_size) // 2
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    fields = []
    truths = {}
    scope = microscope_of(core)
    noisy = scope.camera

    def snap(objective: str, frames: int = 1) -> np.ndarray:
        core.setConfig("Objective", objective)
        if objective == "40x":
            core.setROI(off, off, lr_size, lr_size)
        else:
            core.clearROI()
        shots = []
        for _ in range(frames):
            core.snapImage()
            shots.append(np.asarray(core.getImage(), np.float32))
        return np.mean(shots, axis=0)

    flats: dict[str, FlatField] = {}
    if flat_field:
        core.setXYPosition(*glass_spot(seed, hr_size * 0.074, (0.0, -300.0)))
        exposure = core.getExposure()
        for objective in ("40x", "100x"):
            full = snap(objective, 8)
            core.setExposure(exposure / 2)
            flats[objective] = FlatField.from_frames(full, snap(objective, 8))
            core.setExposure(exposure)

    def corrected(objective: str, image: np.ndarray) -> np.ndarray:
        if objective not in flats:
            return np.asarray(image, np.uint16)
        return np.clip(flats[objective].apply(image).round(), 0, MAX_VALUE).astype(np.uint16)

    for i, split in enumerate(splits):
        x, y = (i % 4) * spacing_um, (i // 4) * spacing_um
        core.setXYPosition(x, y)
        lr = corrected("40x", snap("40x"))
        fields.append((f"s{i:03d}", split, lr, corrected("100x", snap("100x"))))
        if truth:
            scope.camera = noisy.model_copy(update={"noise": False})
            truths[f"s{i:03d}"] = corrected("100x", snap("100x"))
            scope.camera = noisy
    return save_fields(directory, fields, channels=3, source="simulator", seed=seed, truths=truths)


def simulated_pairs_dataset(
    root: Path, *, seed: int, sensor: int, n_targets: int, z_slices: int, core: Any = None
) -> SimulatedDataset:
    """A paired dataset snapped on the simulator: 3x3 40x tiles (15 % overlap) over tissue."""
    from simulators import nominal_pixel_size_um
    from simulators.dataset import make_simulated_dataset, tissue_region

    fov_um = sensor * nominal_pixel_size_um("40x")
    return make_simulated_dataset(
        root,
        seed=seed,
        sensor_px=sensor,
        n_targets=n_targets,
        z_slices=z_slices,
        centre_um=tissue_region(seed, 2 * 0.85 * fov_um + fov_um),
        min_tissue=0.6,
        core=core,
    )
