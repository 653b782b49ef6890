"""The regions figure: every method side by side on the same crops of test fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from deepscope.atomic import atomic_path

#: How methods are titled in figures and tables.
LABELS = {
    "bicubic": "bicubic",
    "gaussian": "bicubic + Gaussian",
    "richardson_lucy": "Richardson-Lucy",
    "wiener": "Wiener",
    "network": "network",
    "network_x2": "network x2",
}


@dataclass(frozen=True)
class RegionRow:
    """One test field's images for the figure (raw units, ``(y, x, c)``)."""

    pair_id: str
    lr: np.ndarray
    methods: Mapping[str, np.ndarray]
    target: np.ndarray
    truth: np.ndarray | None
    #: method -> caption under its panel (scores)
    captions: Mapping[str, str]


def _crop_box(row: RegionRow, scale: float, crop: int) -> tuple[int, int, int, int]:
    """The 40x crop ``(y0, x0, size)`` with the most target texture, and its 100x side.

    Candidates are a 3x3 grid of crops; origins are multiples of the scale's denominator so that
    the 100x crop starts on a whole pixel.
    """
    h, w = row.lr.shape[:2]
    c = min(crop, h, w)
    q = Fraction(scale).limit_denominator(4).denominator
    C = round(c * scale)
    best = (-1.0, 0, 0)
    for fy in (0.2, 0.5, 0.8):
        for fx in (0.2, 0.5, 0.8):
            y0, x0 = round((h - c) * fy) // q * q, round((w - c) * fx) // q * q
            Y0, X0 = round(y0 * scale), round(x0 * scale)
            spread = float(row.target[Y0 : Y0 + C, X0 : X0 + C].std())
            best = max(best, (spread, y0, x0))
    return best[1], best[2], c, C


def panel_titles(rows: list[RegionRow]) -> list[str]:
    """Column titles of the figure, left to right."""
    methods = [LABELS.get(m, m) for m in rows[0].methods]
    truth = ["noise-free truth"] if any(r.truth is not None for r in rows) else []
    return ["40x input", *methods, "100x target", *truth]


def plot_regions(path: Path, rows: list[RegionRow], scale: float, crop: int = 48) -> Path:
    """Rows of crops (*crop* 40x pixels): input, each method, target, truth.

    Every panel of a row shares the display levels (the target crop's 0.5-99.5 percentiles).
    """
    from matplotlib.figure import Figure

    titles = panel_titles(rows)
    ncol = len(titles)
    fig = Figure(figsize=(1.75 * ncol, 2.15 * len(rows) + 0.3), layout="constrained")
    axes = fig.subplots(len(rows), ncol, squeeze=False)
    for ax_row, row in zip(axes, rows, strict=True):
        y0, x0, c, C = _crop_box(row, scale, crop)
        Y0, X0 = round(y0 * scale), round(x0 * scale)
        target = row.target[Y0 : Y0 + C, X0 : X0 + C]
        lo, hi = np.percentile(target, [0.5, 99.5])
        panels: list[tuple[np.ndarray | None, str]] = [(row.lr[y0 : y0 + c, x0 : x0 + c], "")]
        for m, img in row.methods.items():
            panels.append((img[Y0 : Y0 + C, X0 : X0 + C], row.captions.get(m, "")))
        panels.append((target, ""))
        if len(titles) > len(panels):
            if row.truth is None:
                panels.append((None, "not known"))
            else:
                panels.append((row.truth[Y0 : Y0 + C, X0 : X0 + C], ""))
        for col, (ax, (panel, caption), title) in enumerate(
            zip(ax_row, panels, titles, strict=True)
        ):
            ax.set_xticks([])
            ax.set_yticks([])
            if panel is not None:
                shown = np.clip((panel.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0, 1)
                ax.imshow(shown[..., 0] if shown.shape[2] == 1 else shown, cmap="gray")
            ax.set_title(title, fontsize=10)
            ax.set_xlabel(caption, fontsize=8.5)
            if col == 0:
                ax.set_ylabel(row.pair_id, fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path
