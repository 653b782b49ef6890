"""Modulation transfer on the simulated USAF-1951 target: bar contrast at 40x, enhanced, 100x.

The target (a :class:`BarTarget`: the simulated microscope's, which the command line hands in)
is imaged at 40x through its Micro-Manager core (the stage position and pixel size place every
element), each group's row is
enhanced by the network, and the Michelson contrast ``(I_gap - I_bar) / (I_gap + I_bar)`` is
measured on dark-subtracted luminance: bar and gap centres sampled (bilinear) on lines across the
middle 60 % of the bars, averaged along them, for both bar orientations. The 100x objective, one
snap per element, gives the reference the network is trained to reach.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from scipy.ndimage import map_coordinates
from tqdm import tqdm

from deepscope.atomic import atomic_path, atomic_write_json, atomic_write_text
from deepscope.errors import InputError
from deepscope.imaging import to_gray
from model.config import ModelConfig
from model.inference.engine import Enhancer, pixel_size_mismatch
from model.network import DeepMicroscopyNet
from model.store import load_model
from model.training.infer import bicubic_upsample

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

log = logging.getLogger("deepscope.training")


class BarTarget(Protocol):
    """A USAF-1951 target under a microscope whose stage and pixel size place its elements.

    An element has ``group, element, lp_per_mm, bar_width_um``, the centre ``x_um, y_um`` of
    its vertical bars and ``horizontal_x_um, horizontal_y_um`` of its horizontal ones.
    """

    def elements(self, groups: tuple[int, ...] | None = None) -> list[Any]:
        """The elements of *groups* (None: every group of the target)."""

    def pixel_size_um(self, objective: str) -> float:
        """Pixel size of *objective* (``"40x"``, ``"100x"``)."""

    def open_core(self, sensor: tuple[int, int], seed: int) -> CMMCorePlus:
        """A core over the target, objective group ``Objective``, ``(height, width)`` sensor."""


#: 40x pixels of margin around each group's row (more than the network's receptive field).
MARGIN_PX = 24


@dataclass(frozen=True)
class Grid:
    """Slide position of pixel ``(row, col)``: ``(x0 + col * pitch, y0 + row * pitch)`` in um."""

    x0_um: float
    y0_um: float
    pitch_um: float

    def crop(self, row: int, col: int) -> Grid:
        """The grid of a crop starting at ``(row, col)``."""
        return Grid(
            self.x0_um + col * self.pitch_um, self.y0_um + row * self.pitch_um, self.pitch_um
        )

    def upsampled(self, scale: float) -> Grid:
        """The grid of the network output (pixel areas aligned with the input's)."""
        return Grid(
            self.x0_um - (0.5 - 0.5 / scale) * self.pitch_um,
            self.y0_um - (0.5 - 0.5 / scale) * self.pitch_um,
            self.pitch_um / scale,
        )


@dataclass(frozen=True)
class ElementContrast:
    """Michelson contrast of one element (mean of both orientations) per imaging path."""

    group: int
    element: int
    lp_per_mm: float
    bar_width_um: float
    input_contrast: float
    bicubic_contrast: float
    network_contrast: float
    target_contrast: float | None


@dataclass(frozen=True)
class MtfReport:
    """Contrast per element and the files written."""

    elements: list[ElementContrast]
    json_path: Path
    markdown_path: Path
    figure_path: Path


def bar_contrast(
    luminance: np.ndarray, grid: Grid, x_um: float, y_um: float, bar_um: float, along_x: bool
) -> float:
    """Michelson contrast of three bars centred at ``(x_um, y_um)`` (bars dark, gaps bright)."""
    offsets = np.arange(-2, 3) * bar_um  # bar, gap, bar, gap, bar
    across = np.linspace(-1.5, 1.5, 15) * bar_um  # middle 60 % of the 5-bar-width length
    a, b = np.meshgrid(offsets, across)
    xs, ys = (x_um + a, y_um + b) if along_x else (x_um + b, y_um + a)
    rows, cols = (ys - grid.y0_um) / grid.pitch_um, (xs - grid.x0_um) / grid.pitch_um
    values = map_coordinates(luminance, [rows.ravel(), cols.ravel()], order=1, mode="nearest")
    profile = values.reshape(a.shape).mean(axis=0)
    bars, gaps = profile[::2].mean(), profile[1::2].mean()
    return float((gaps - bars) / (gaps + bars))


def element_contrast(luminance: np.ndarray, grid: Grid, el: Any) -> float:
    """Mean contrast of the vertical and horizontal bars of a ``UsafElement``."""
    w = el.bar_width_um
    cx = bar_contrast(luminance, grid, el.x_um, el.y_um, w, along_x=True)
    cy = bar_contrast(luminance, grid, el.horizontal_x_um, el.horizontal_y_um, w, along_x=False)
    return (cx + cy) / 2


def _extent(elements: list[Any]) -> tuple[float, float, float, float]:
    """Bounding box ``(x0, x1, y0, y1)`` in um of the elements' bar patterns."""
    x0 = min(e.x_um - 2.5 * e.bar_width_um for e in elements)
    x1 = max(e.horizontal_x_um + 2.5 * e.bar_width_um for e in elements)
    y0 = min(e.y_um - 2.5 * e.bar_width_um for e in elements)
    y1 = max(e.y_um + 2.5 * e.bar_width_um for e in elements)
    return x0, x1, y0, y1


def _snap(core: Any, dark: float) -> tuple[np.ndarray, Grid]:
    """Snap a frame; return dark-subtracted luminance and its grid (stage at frame centre)."""
    core.snapImage()
    img = np.asarray(core.getImage(), np.float32)
    lum = to_gray(img) - dark
    px = float(core.getPixelSizeUm())
    sx, sy = core.getXYPosition()
    h, w = lum.shape
    return lum, Grid(sx - (w - 1) / 2 * px, sy - (h - 1) / 2 * px, px)


def _dark_level(core: Any) -> float:
    auto = core.getAutoShutter()
    core.setAutoShutter(False)
    core.setShutterOpen(False)
    core.snapImage()
    dark = float(np.asarray(core.getImage(), np.float64).mean())
    core.setAutoShutter(auto)
    return dark


def _enhanced_luminance(
    net: DeepMicroscopyNet,
    cfg: ModelConfig,
    frame: np.ndarray,
    grid: Grid,
    elements: list[Any],
    dark: float,
    device: str,
) -> tuple[np.ndarray, np.ndarray, Grid]:
    """Enhance and bicubic-upsample the 40x crop around *elements*.

    Returns the dark-subtracted luminance of both and their common grid.
    """
    x0, x1, y0, y1 = _extent(elements)
    q = net.stride
    c0 = max(0, int((x0 - grid.x0_um) / grid.pitch_um) - MARGIN_PX) // q * q
    r0 = max(0, int((y0 - grid.y0_um) / grid.pitch_um) - MARGIN_PX) // q * q
    c1 = min(frame.shape[1], int((x1 - grid.x0_um) / grid.pitch_um) + MARGIN_PX)
    r1 = min(frame.shape[0], int((y1 - grid.y0_um) / grid.pitch_um) + MARGIN_PX)
    crop = frame[r0:r1, c0:c1]
    out = Enhancer(net, cfg, device=device, precision="fp32").enhance(crop)
    bicubic = bicubic_upsample(crop if crop.ndim == 3 else crop[..., None], net.config.scale)
    return (
        to_gray(out) - dark,
        to_gray(bicubic) - dark,
        grid.crop(r0, c0).upsampled(net.config.scale),
    )


def measure_mtf(
    model_dir: str | Path,
    out_dir: str | Path,
    target: BarTarget,
    *,
    device: str = "cpu",
    groups: tuple[int, ...] | None = None,
    with_target: bool = True,
    seed: int = 0,
) -> MtfReport:
    """Measure bar contrast of the USAF *target* at 40x, after the network, and at 100x.

    Writes ``mtf.json``, ``mtf.md`` and ``mtf.png`` into *out_dir*.
    """
    px40, px100 = target.pixel_size_um("40x"), target.pixel_size_um("100x")
    net, cfg = load_model(model_dir, expect_scale=px40 / px100, device=device)
    if (mismatch := pixel_size_mismatch(cfg, px40)) is not None:
        raise InputError(f"model {model_dir}: {mismatch}")
    elements = target.elements(groups)
    x0, x1, y0, y1 = _extent(elements)
    sensor = (
        (int(2 * max(abs(y0), abs(y1)) / px40) + 2 * MARGIN_PX) // 2 * 2,
        (int(2 * max(abs(x0), abs(x1)) / px40) + 2 * MARGIN_PX) // 2 * 2,
    )
    core = target.open_core(sensor, seed)
    core.setConfig("Objective", "40x")
    core.setXYPosition(0.0, 0.0)
    dark = _dark_level(core)
    lum40, grid40 = _snap(core, 0.0)
    frame = np.asarray(core.getImage())
    if cfg.network.channels == 1 and frame.ndim == 3:
        frame = to_gray(frame)
    contrasts: list[ElementContrast] = []
    for g in tqdm(sorted({e.group for e in elements}), desc="MTF", unit="group", leave=False):
        row = [e for e in elements if e.group == g]
        lum_net, lum_bic, grid_net = _enhanced_luminance(net, cfg, frame, grid40, row, dark, device)
        contrasts += [
            ElementContrast(
                group=el.group,
                element=el.element,
                lp_per_mm=el.lp_per_mm,
                bar_width_um=el.bar_width_um,
                input_contrast=element_contrast(lum40 - dark, grid40, el),
                bicubic_contrast=element_contrast(lum_bic, grid_net, el),
                network_contrast=element_contrast(lum_net, grid_net, el),
                target_contrast=None,
            )
            for el in row
        ]
    if with_target:
        core.setConfig("Objective", "100x")
        by_id = {(e.group, e.element): e for e in elements}
        for i, c in enumerate(contrasts):
            el = by_id[c.group, c.element]
            core.setXYPosition((el.x_um + el.horizontal_x_um) / 2, el.y_um)
            lum100, grid100 = _snap(core, dark)
            contrasts[i] = replace(c, target_contrast=element_contrast(lum100, grid100, el))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "mtf.json"
    atomic_write_json(
        json_path,
        {
            "model_dir": str(Path(model_dir).resolve()),
            "method": "Michelson contrast of bar/gap centres, dark-subtracted luminance",
            "dark_counts": dark,
            "elements": [asdict(c) for c in contrasts],
        },
    )
    md_path = out / "mtf.md"
    atomic_write_text(md_path, mtf_markdown(contrasts))
    fig_path = plot_mtf(out / "mtf.png", contrasts)
    return MtfReport(contrasts, json_path, md_path, fig_path)


def mtf_markdown(contrasts: list[ElementContrast]) -> str:
    """Contrast per element as a Markdown table."""
    lines = [
        "| group | element | lp/mm | bar width (um) "
        "| 40x input | bicubic | network | 100x target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in contrasts:
        target = "" if c.target_contrast is None else f"{c.target_contrast:.3f}"
        lines.append(
            f"| {c.group} | {c.element} | {c.lp_per_mm:.0f} | {c.bar_width_um:.3f} | "
            f"{c.input_contrast:.3f} | {c.bicubic_contrast:.3f} | {c.network_contrast:.3f} | "
            f"{target} |"
        )
    return "\n".join(lines) + "\n"


def plot_mtf(path: Path, contrasts: list[ElementContrast]) -> Path:
    """Contrast against spatial frequency for input, network and target."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    freq = [c.lp_per_mm for c in contrasts]
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    ax.semilogx(freq, [c.input_contrast for c in contrasts], "o-", label="40x input")
    ax.semilogx(freq, [c.bicubic_contrast for c in contrasts], "x:", label="bicubic")
    ax.semilogx(freq, [c.network_contrast for c in contrasts], "s-", label="network")
    if all(c.target_contrast is not None for c in contrasts):
        ax.semilogx(freq, [c.target_contrast for c in contrasts], "^--", label="100x target")
    ax.set(xlabel="line pairs per mm", ylabel="Michelson contrast", title="USAF-1951 bar contrast")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axhline(0, c="gray", lw=0.5)
    ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path
