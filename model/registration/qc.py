"""The QC report beside the pairs: ``qc.json``, ``qc.md`` and ``qc_overview.png``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.atomic import atomic_path, atomic_write_json, atomic_write_text
from deepscope.formats.pairs import PairSet

QC_JSON = "qc.json"
QC_MD = "qc.md"
QC_PNG = "qc_overview.png"
#: Largest side (pixels) of an image drawn in the overview.
PANEL_PX = 512


def reason_kind(reason: str) -> str:
    """The category of a rejection reason (the text before the colon)."""
    return reason.split(":")[0].strip()


def write_reports(
    out_dir: Path,
    pairset: PairSet,
    stitching: dict[str, Any],
    model: dict[str, Any],
    thresholds: dict[str, Any],
) -> dict[str, Any]:
    """Write ``qc.json`` and ``qc.md``; return the JSON summary."""
    accepted = pairset.accepted()
    reasons = Counter(reason_kind(p.reason or "") for p in pairset.pairs if not p.accepted)
    nccs = [p.ncc for p in accepted if p.ncc is not None]
    summary: dict[str, Any] = {
        "fields": len(pairset.pairs),
        "accepted": len(accepted),
        "rejected": len(pairset.pairs) - len(accepted),
        "rejections": dict(reasons),
        "splits": dict(Counter(p.split for p in accepted)),
        "ncc_median": float(np.median(nccs)) if nccs else None,
        "model": model,
        "thresholds": thresholds,
        "stitching": stitching,
        "pairs": [
            {
                "pair_id": p.pair_id,
                "split": p.split,
                "accepted": p.accepted,
                "reason": p.reason,
                "ncc": p.ncc,
                "residual_px": p.residual,
                "transform": p.transform.model_dump() if p.transform else None,
                "intensity": p.intensity.model_dump() if p.intensity else None,
                **p.extra,
            }
            for p in pairset.pairs
        ],
    }
    atomic_write_json(out_dir / QC_JSON, summary)
    lines = [
        "# Registration QC",
        "",
        f"Source: `{pairset.source}`  ",
        f"Fields: {summary['fields']}, accepted {summary['accepted']}, rejected "
        f"{summary['rejected']}; EDOF: {pairset.edof}; scale {pairset.scale}  ",
        f"Stitching: {stitching['edges']} overlap edges, {stitching['rejected_edges']} rejected  ",
        f"Common 100x->40x rotation/scale: {model}  ",
        f"Flat-field correction (fall-off of the blank frames): {pairset.flat_field or 'none'}",
        "",
        "| pair | split | status | NCC | residual px | rotation deg | scale | tile | hr gain | "
        "hr offset |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in pairset.pairs:
        t = p.transform
        status = "ok" if p.accepted else f"rejected: {p.reason}"
        lines.append(
            f"| {p.pair_id} | {p.split} | {status} | "
            f"{'' if p.ncc is None else f'{p.ncc:.3f}'} | "
            f"{'' if p.residual is None else f'{p.residual:.3f}'} | "
            f"{'' if t is None else f'{t.rotation_deg:.3f}'} | "
            f"{'' if t is None else f'{t.scale:.5f}'} | {p.extra.get('tile', '')} | "
            f"{_values(p.intensity.gain, 4) if p.intensity else ''} | "
            f"{_values(p.intensity.offset, 1) if p.intensity else ''} |"
        )
    if Path(out_dir / QC_PNG).exists():
        lines += ["", f"![overview]({QC_PNG})"]
    atomic_write_text(out_dir / QC_MD, "\n".join(lines) + "\n")
    return summary


def _values(values: tuple[float, ...], digits: int) -> str:
    return " ".join(f"{v:.{digits}f}" for v in values)


def write_overview(
    out_dir: Path,
    mosaic: np.ndarray,
    footprints: list[tuple[np.ndarray, bool, str]],
    samples: list[tuple[str, np.ndarray, np.ndarray]],
) -> Path:
    """PNG: the mosaic with every field's outline, and checkerboards of a few pairs.

    *footprints* are ``(corners (4, 2) in mosaic pixels, accepted, label)``; *samples* are
    ``(pair_id, lr gray, hr gray)``; each checkerboard alternates lr (upsampled) and hr.
    """
    import matplotlib

    matplotlib.use("Agg")
    import cv2
    from matplotlib.figure import Figure
    from skimage.util import compare_images

    ncols = 1 + len(samples)
    fig = Figure(figsize=(4 * ncols, 4.4))
    ax = fig.add_subplot(1, ncols, 1)
    # the figure is ~450 px per panel: draw small copies (extent keeps mosaic coordinates)
    step = max(1, max(mosaic.shape) // PANEL_PX)
    ax.imshow(
        mosaic[::step, ::step],
        cmap="gray",
        extent=(-0.5, mosaic.shape[1] - 0.5, mosaic.shape[0] - 0.5, -0.5),
    )
    for corners, ok, label in footprints:
        closed = np.vstack([corners, corners[:1]])
        ax.plot(closed[:, 0], closed[:, 1], color="lime" if ok else "red", lw=0.8)
        ax.text(corners[0, 0], corners[0, 1], label, color="yellow", fontsize=5)
    ax.set_title("40x mosaic: accepted (green), rejected (red)", fontsize=8)
    ax.axis("off")
    for i, (pid, lr, hr_full) in enumerate(samples, start=2):
        f = min(1.0, PANEL_PX / max(hr_full.shape))
        hr = cv2.resize(hr_full, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        up = cv2.resize(lr, (hr.shape[1], hr.shape[0]), interpolation=cv2.INTER_CUBIC)
        norm = [(im - im.mean()) / (im.std() + 1e-9) for im in (up, hr)]
        board = compare_images(norm[0], norm[1], method="checkerboard", n_tiles=(6, 6))
        axi = fig.add_subplot(1, ncols, i)
        axi.imshow(board, cmap="gray")
        axi.set_title(f"{pid}: 40x / 100x checkerboard", fontsize=8)
        axi.axis("off")
    fig.tight_layout()
    path = out_dir / QC_PNG
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
