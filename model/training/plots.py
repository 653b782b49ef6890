"""Figures of training curves (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path

from deepscope.atomic import atomic_path
from model.training.config import ValMetrics


def plot_curves(path: Path, history: list[ValMetrics], bicubic: tuple[float, float]) -> Path:
    """Plot training loss and validation SSIM/PSNR per validation step (bicubic as dashed lines)."""
    from matplotlib.figure import Figure

    steps = [m.step for m in history]
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    ax_loss, ax_ssim, ax_psnr = fig.subplots(1, 3)
    ax_loss.semilogy(steps, [m.train_loss for m in history], "o-")
    ax_loss.set(title="training loss", xlabel="step")
    ax_ssim.plot(steps, [m.val_ssim for m in history], "o-", label="network")
    ax_ssim.axhline(bicubic[0], ls="--", c="gray", label="bicubic")
    ax_ssim.set(title="validation SSIM", xlabel="step")
    ax_ssim.legend()
    ax_psnr.plot(steps, [m.val_psnr for m in history], "o-", label="network")
    ax_psnr.axhline(bicubic[1], ls="--", c="gray", label="bicubic")
    ax_psnr.set(title="validation PSNR (dB)", xlabel="step")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path
