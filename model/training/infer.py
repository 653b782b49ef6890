"""The bicubic baseline the network is judged against (same output size as the network)."""

from __future__ import annotations

import math

import numpy as np
import torch

from model.network import bicubic_upsample as _bicubic


def bicubic_upsample(image: np.ndarray, scale: float) -> np.ndarray:
    """Bicubic upsampling of a raw ``(y, x, c)`` image by *scale* to ``ceil(scale * size)``.

    The same resampling as the network's global skip, so an untrained skip network equals it.
    """
    arr = torch.from_numpy(np.moveaxis(image.astype(np.float32), -1, 0))[None]
    size = (math.ceil(image.shape[0] * scale), math.ceil(image.shape[1] * scale))
    return np.moveaxis(_bicubic(arr, scale, size)[0].numpy(), 0, -1)
