"""Whole-image inference for validation and evaluation (tiled with a halo, exact at seams)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from model.config import ModelConfig
from model.network import DeepMicroscopyNet
from model.training.data import normalise

#: 40x pixels of context around each tile; more than the network's receptive-field radius.
HALO = 16


@torch.no_grad()
def forward_tiled(net: DeepMicroscopyNet, x: torch.Tensor, tile: int = 256) -> torch.Tensor:
    """Run *net* on a normalised ``(1, c, y, x)`` tensor in halo-padded tiles.

    Tiles start on multiples of the scale's denominator so their outputs land on whole pixels;
    the halo makes the result equal to a single whole-image forward up to rounding.
    """
    _, c, h, w = x.shape
    H, W = net.output_size(h, w)
    p, q = net.shuffle_factor, net.stride
    if h <= tile + 2 * HALO and w <= tile + 2 * HALO:
        return net(x)
    tile = max(q, tile // q * q)
    out = torch.empty((1, c, H, W), dtype=x.dtype, device=x.device)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            ya, xa = max(0, y0 - HALO), max(0, x0 - HALO)
            yb, xb = min(h, y1 + HALO), min(w, x1 + HALO)
            res = net(x[:, :, ya:yb, xa:xb])
            oy0, ox0 = y0 * p // q, x0 * p // q
            oy1 = H if y1 == h else y1 * p // q
            ox1 = W if x1 == w else x1 * p // q
            ry, rx = oy0 - ya * p // q, ox0 - xa * p // q
            out[:, :, oy0:oy1, ox0:ox1] = res[:, :, ry : ry + oy1 - oy0, rx : rx + ox1 - ox0]
    return out


def enhance_image(
    net: DeepMicroscopyNet,
    config: ModelConfig,
    image: np.ndarray,
    *,
    device: str | torch.device = "cpu",
    tile: int = 256,
) -> np.ndarray:
    """Enhance one raw ``(y, x, c)`` (or ``(y, x)`` mono) image; returns raw float32 units."""
    mono = image.ndim == 2
    arr = image[None] if mono else np.moveaxis(image, -1, 0)
    norm = config.normalisation
    x = torch.from_numpy(normalise(arr.astype(np.float32), norm.input_offset, norm.input_scale))
    net.eval()
    y = forward_tiled(net, x[None].to(device), tile=tile)[0].float().cpu().numpy()
    o = np.asarray(norm.target_offset, np.float32)[:, None, None]
    s = np.asarray(norm.target_scale, np.float32)[:, None, None]
    y = y * s + o
    return y[0] if mono else np.moveaxis(y, 0, -1)


def bicubic_upsample(image: np.ndarray, scale: float) -> np.ndarray:
    """Bicubic upsampling of a raw ``(y, x, c)`` image to the network's ``ceil(scale * size)``."""
    arr = torch.from_numpy(np.moveaxis(image.astype(np.float32), -1, 0))[None]
    size = (math.ceil(image.shape[0] * scale), math.ceil(image.shape[1] * scale))
    up = F.interpolate(arr, size=size, mode="bicubic", align_corners=False)
    return np.moveaxis(up[0].numpy(), 0, -1)
