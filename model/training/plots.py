"""Figures of training curves (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path

from deepscope.atomic import atomic_path
from model.training.config import EpochMetrics


def plot_curves(path: Path, history: list[EpochMetrics], bicubic: tuple[float, float]) -> Path:
    """Plot training loss and validation SSIM/PSNR per epoch (bicubic as dashed lines)."""
    from matplotlib.figure import Figure

    epochs = [m.epoch for m in history]
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    ax_loss, ax_ssim, ax_psnr = fig.subplots(1, 3)
    ax_loss.semilogy(epochs, [m.train_loss for m in history], "o-")
    ax_loss.set(title="training loss", xlabel="epoch")
    ax_ssim.plot(epochs, [m.val_ssim for m in history], "o-", label="network")
    ax_ssim.axhline(bicubic[0], ls="--", c="gray", label="bicubic")
    ax_ssim.set(title="validation SSIM", xlabel="epoch")
    ax_ssim.legend()
    ax_psnr.plot(epochs, [m.val_psnr for m in history], "o-", label="network")
    ax_psnr.axhline(bicubic[1], ls="--", c="gray", label="bicubic")
    ax_psnr.set(title="validation PSNR (dB)", xlabel="epoch")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path
