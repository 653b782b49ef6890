"""Choosing the torch device that training, evaluation and inference run on."""

from __future__ import annotations

import torch

from deepscope.errors import InputError

#: What a device setting may say.
DEVICE_CHOICES = "auto, cpu or cuda[:N]"


def resolve_device(device: str | torch.device, local_rank: int | None = None) -> torch.device:
    """The device named by *device*, checked; raise :class:`InputError` for bad names.

    ``"auto"`` is CUDA when available (GPU *local_rank* under DDP, else the current one), else
    the CPU; ``"cuda"`` without an index is the current CUDA device.
    """
    if str(device) == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        device = "cuda" if local_rank is None else f"cuda:{local_rank}"
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"device {device!r} is not valid; expected {DEVICE_CHOICES}") from exc
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"device {device!r} is not supported; expected {DEVICE_CHOICES}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available; use cpu")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev
