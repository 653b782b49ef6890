"""Render the README's simulator pictures (``docs/img/sim_*.png``) from the virtual microscope.

Both objectives look at the same spot, focused at mid-section, on a microscope without
imperfections (no objective offsets, so the frames share their centre): ``sim_40x.png`` and
``sim_100x.png`` are 384 px of each camera; ``sim_40x_bicubic.png`` is the 40x image of the
100x field's area, bicubic-upsampled to the 100x grid: what the network starts from.

    python docs/make_sim_images.py [--x UM --y UM --seed N --out docs/img]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from skimage.io import imsave

from simulators import make_core, microscope_of

SIZE = 384


def snap(objective: str, x: float, y: float, seed: int, size: int) -> np.ndarray:
    """A centred *size* px frame at (x, y) focused at mid-section, in counts above the offset."""
    core = make_core(seed=seed, objective=objective, imperfections=False)
    scope = microscope_of(core)
    core.setROI((2048 - size) // 2, (2048 - size) // 2, size, size)
    core.setExposure(10.0)
    core.setXYPosition(x, y)
    core.setPosition(0.0)
    core.snapImage()
    return core.getImage().astype(np.float32) - scope.camera.offset_counts


def to_png(image: np.ndarray, path: Path) -> None:
    """Write counts as 8-bit RGB, bright glass (3000 counts) near white."""
    imsave(path, np.clip(image / 3000 * 255, 0, 255).astype(np.uint8), check_contrast=False)


def main() -> None:
    """Render the pictures into ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--x", type=float, default=100.0)
    ap.add_argument("--y", type=float, default=50.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "img")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lo = snap("40x", args.x, args.y, args.seed, SIZE)
    hi = snap("100x", args.x, args.y, args.seed, SIZE)
    to_png(lo, args.out / "sim_40x.png")
    to_png(hi, args.out / "sim_100x.png")
    n = round(SIZE / 2.5)  # the 100x field is 154 40x pixels wide
    c0 = (SIZE - n) // 2
    crop = cv2.resize(lo[c0 : c0 + n, c0 : c0 + n], (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    to_png(crop, args.out / "sim_40x_bicubic.png")


if __name__ == "__main__":
    main()
