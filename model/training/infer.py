"""The bicubic baseline the network is judged against (same output size as the network)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def bicubic_upsample(image: np.ndarray, scale: float) -> np.ndarray:
    """Bicubic upsampling of a raw ``(y, x, c)`` image to the network's ``ceil(scale * size)``."""
    arr = torch.from_numpy(np.moveaxis(image.astype(np.float32), -1, 0))[None]
    size = (math.ceil(image.shape[0] * scale), math.ceil(image.shape[1] * scale))
    up = F.interpolate(arr, size=size, mode="bicubic", align_corners=False)
    return np.moveaxis(up[0].numpy(), 0, -1)
