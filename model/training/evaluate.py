"""Evaluation on the test fields: SSIM/PSNR of bicubic, network and network-twice vs 100x.

The table follows Supplementary Table 1 of Rivenson et al. (2017). "Network x2" feeds the network
output (on the 100x grid) back into the network, as in the paper; the result, on a grid 2.5x finer
than 100x, is area-averaged (OpenCV ``INTER_AREA``) back onto the 100x grid to be compared with the
target. All metrics use the pairs' white level as data range (see :mod:`model.training.metrics`).
Inference runs through :class:`model.inference.engine.Enhancer` in fp32, as ``deepscope enhance``
does, so the table judges what users get.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from deepscope.atomic import atomic_path, atomic_write_json, atomic_write_text
from deepscope.errors import InputError
from model.inference.engine import Enhancer
from model.pairs import load_pairset
from model.store import load_model
from model.training.data import load_fields
from model.training.infer import bicubic_upsample
from model.training.metrics import crop_common, ssim_psnr

log = logging.getLogger("deepscope.training")

METHODS = ("bicubic", "network", "network_x2")


@dataclass(frozen=True)
class FieldScores:
    """SSIM and PSNR (dB) of each method on one test field."""

    pair_id: str
    bicubic_ssim: float
    bicubic_psnr: float
    network_ssim: float
    network_psnr: float
    network_x2_ssim: float
    network_x2_psnr: float


@dataclass(frozen=True)
class EvaluationReport:
    """Per-field scores, their means, and the files written."""

    fields: list[FieldScores]
    mean: dict[str, float]
    json_path: Path
    markdown_path: Path
    figure_path: Path


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-average a ``(y, x, c)`` float image onto a ``height x width`` grid."""
    out = cv2.resize(image.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    return out.reshape(height, width, image.shape[2])


def markdown_table(fields: list[FieldScores], mean: dict[str, float]) -> str:
    """The scores as a Markdown table (rows: fields and the mean)."""
    head = "| field | " + " | ".join(f"{m} SSIM | {m} PSNR (dB)" for m in METHODS) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(METHODS))]
    rows = [(f.pair_id, asdict(f)) for f in fields] + [("**mean**", mean)]
    for name, vals in rows:
        cells = [f"{vals[f'{m}_ssim']:.4f} | {vals[f'{m}_psnr']:.2f}" for m in METHODS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluate_model(
    model_dir: str | Path,
    pairs_dir: str | Path,
    out_dir: str | Path,
    *,
    device: str = "cpu",
    regions: int = 3,
) -> EvaluationReport:
    """Score bicubic, network and network-twice on the test fields; write JSON, Markdown, PNG."""
    pairs_dir, out_dir = Path(pairs_dir), Path(out_dir)
    pairset = load_pairset(pairs_dir)
    net, cfg = load_model(
        model_dir, expect_scale=pairset.scale, expect_channels=pairset.channels, device=device
    )
    tests = load_fields(pairs_dir, pairset, "test")
    if not tests:
        raise InputError(f"{pairs_dir} has no accepted test pairs to evaluate on")
    out_dir.mkdir(parents=True, exist_ok=True)
    enhancer = Enhancer(net, cfg, device=device, precision="fp32")
    scores: list[FieldScores] = []
    panels: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for f in tqdm(tests, desc="evaluate", unit="field", leave=False):
        lr, hr = np.moveaxis(f.lr, 0, -1), np.moveaxis(f.hr, 0, -1)
        bicubic = bicubic_upsample(lr, pairset.scale)
        once = enhancer.enhance(lr)
        twice = enhancer.enhance(once)
        twice = area_resize(twice, *once.shape[:2])
        metrics = [ssim_psnr(img, hr, pairset.max_value) for img in (bicubic, once, twice)]
        scores.append(FieldScores(f.pair_id, *(v for pair in metrics for v in pair)))
        if len(panels) < regions:
            panels.append((f.pair_id, lr, bicubic, once, hr))
    mean = {
        k: float(np.mean([getattr(s, k) for s in scores]))
        for k in asdict(scores[0])
        if k != "pair_id"
    }
    json_path = out_dir / "evaluation.json"
    atomic_write_json(
        json_path,
        {
            "model_dir": str(Path(model_dir).resolve()),
            "pairs_dir": str(pairs_dir.resolve()),
            "max_value": pairset.max_value,
            "network_x2": "output fed back into the network, area-averaged to the 100x grid",
            "fields": [asdict(s) for s in scores],
            "mean": mean,
        },
    )
    md_path = out_dir / "evaluation.md"
    atomic_write_text(md_path, markdown_table(scores, mean))
    fig_path = plot_regions(out_dir / "regions.png", panels, pairset.max_value)
    log.info(
        "test SSIM bicubic %.4f network %.4f x2 %.4f",
        mean["bicubic_ssim"],
        mean["network_ssim"],
        mean["network_x2_ssim"],
    )
    return EvaluationReport(scores, mean, json_path, md_path, fig_path)


def plot_regions(
    path: Path,
    panels: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    max_value: float,
    crop: int = 100,
) -> Path:
    """Rows of ``input | bicubic | network | target`` crops (centre, *crop* 40x pixels)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 2.6 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 4, squeeze=False)
    for row, (pid, lr, bicubic, net, hr) in zip(axes, panels, strict=True):
        h, w = lr.shape[:2]
        c = min(crop, h, w)
        y0, x0 = (h - c) // 2, (w - c) // 2
        s = hr.shape[0] / h
        Y0, X0, C = round(y0 * s), round(x0 * s), round(c * s)
        tiles = [lr[y0 : y0 + c, x0 : x0 + c]]
        for img in (bicubic, net, hr):
            tiles.append(
                crop_common(img[Y0 : Y0 + C, X0 : X0 + C], hr[Y0 : Y0 + C, X0 : X0 + C])[0]
            )
        for ax, img, title in zip(
            row, tiles, ("40x input", "bicubic", "network", "100x target"), strict=True
        ):
            shown = np.clip(img / max_value, 0, 1)
            ax.imshow(shown[..., 0] if shown.shape[2] == 1 else shown, cmap="gray")
            ax.set_title(f"{pid}: {title}", fontsize=8)
            ax.axis("off")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path
