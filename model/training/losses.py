"""Training losses: the paper's MSE + gradient penalty, L1, and L1 + SSIM (pytorch-msssim)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim

from model.training.config import TrainConfig

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def dlm_loss(pred: torch.Tensor, target: torch.Tensor, grad_lambda: float) -> torch.Tensor:
    """Paper loss: mean squared error + ``grad_lambda`` x mean squared image gradient of *pred*.

    The gradient term (finite differences along y and x) is the regulariser of Rivenson et al.
    (2017), eq. 1, with lambda ~ 0.001; it discourages noise amplification.
    """
    mse = F.mse_loss(pred, target)
    if grad_lambda == 0:
        return mse
    gy = pred[..., 1:, :] - pred[..., :-1, :]
    gx = pred[..., :, 1:] - pred[..., :, :-1]
    return mse + grad_lambda * (gy.pow(2).mean() + gx.pow(2).mean())


def l1_ssim_loss(
    pred: torch.Tensor, target: torch.Tensor, ssim_weight: float, data_range: float
) -> torch.Tensor:
    """``(1 - w) * L1 + w * (1 - SSIM)`` with pytorch-msssim's SSIM (11x11 Gaussian window)."""
    l1 = F.l1_loss(pred, target)
    if ssim_weight == 0:
        return l1
    s = ssim(pred, target, data_range=data_range, size_average=True)
    return (1 - ssim_weight) * l1 + ssim_weight * (1 - s)


def make_loss(config: TrainConfig, data_range: float) -> Loss:
    """The loss *config* names; *data_range* is the white level in normalised units."""
    if config.loss == "mse_grad":
        return lambda p, t: dlm_loss(p, t, config.grad_lambda)
    if config.loss == "l1":
        return F.l1_loss
    return lambda p, t: l1_ssim_loss(p, t, config.ssim_weight, data_range)
