"""Model directories: ``model.safetensors`` weights + ``config.json``; loading never unpickles."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from deepscope.atomic import atomic_path, atomic_write_text
from deepscope.errors import InputError
from deepscope.validated import load_validated
from model.config import ModelConfig
from model.network import DeepMicroscopyNet

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
#: The reference model shipped with deepscope (trained on the simulator; see its config.json).
REFERENCE_MODEL_DIR = Path(__file__).parent / "reference"


def reference_model_dir() -> Path:
    """Directory of the shipped reference model; InputError if this install lacks it."""
    if not (REFERENCE_MODEL_DIR / WEIGHTS_NAME).is_file():
        raise InputError(
            f"the reference model is missing from {REFERENCE_MODEL_DIR}; reinstall deepscope "
            "or pass --init MODEL / --from-scratch"
        )
    return REFERENCE_MODEL_DIR


def save_model(directory: str | Path, net: DeepMicroscopyNet, config: ModelConfig) -> Path:
    """Write weights and config into *directory* (each file atomically); return the directory."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    with atomic_path(out / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "config_version": "1"})
    atomic_write_text(out / CONFIG_NAME, config.model_dump_json(indent=2) + "\n")
    return out


def load_config(directory: str | Path) -> ModelConfig:
    """Read and validate ``config.json`` of a model directory."""
    d = Path(directory)
    path = d / CONFIG_NAME
    if not d.is_dir():
        raise InputError(f"model directory {d} does not exist")
    if not path.is_file():
        raise InputError(f"{d} is not a model directory: {CONFIG_NAME} is missing")
    return load_validated(path, ModelConfig, "deepscope model config")


def load_model(
    directory: str | Path,
    *,
    expect_scale: float | None = None,
    expect_channels: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[DeepMicroscopyNet, ModelConfig]:
    """Load a model directory (safetensors only) and check it fits the data it will see.

    Raises :class:`~deepscope.errors.InputError` when the directory is incomplete, the weights
    do not match the config, or the model was made for another scale or channel count.
    """
    d = Path(directory)
    config = load_config(d)
    net_cfg = config.network
    if expect_scale is not None and abs(net_cfg.scale - expect_scale) > 1e-6:
        raise InputError(
            f"model {d} was trained for scale {net_cfg.scale}, but the data need scale "
            f"{expect_scale}; train a model for this objective pair"
        )
    if expect_channels is not None and net_cfg.channels != expect_channels:
        raise InputError(
            f"model {d} expects {net_cfg.channels} channel(s), but the images have "
            f"{expect_channels}; use a model trained on {expect_channels}-channel images"
        )
    weights = d / WEIGHTS_NAME
    if not weights.is_file():
        raise InputError(f"{d} is not a model directory: {WEIGHTS_NAME} is missing")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{weights}: not a valid safetensors file ({exc})") from exc
    net = DeepMicroscopyNet(net_cfg)
    _check_weights(weights, state, net.state_dict())
    net.load_state_dict(state, strict=True)
    return net.to(device).eval(), config


def _check_weights(
    path: Path, state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]
) -> None:
    """Refuse weights that are missing, extra, mis-shaped, not floating point or not finite."""
    for name, ref in expected.items():
        t = state.get(name)
        if t is None:
            raise InputError(
                f"{path}: weights do not match {CONFIG_NAME}: tensor {name} is missing"
            )
        if tuple(t.shape) != tuple(ref.shape):
            raise InputError(
                f"{path}: weights do not match {CONFIG_NAME}: tensor {name} has shape "
                f"{tuple(t.shape)}, the network needs {tuple(ref.shape)}"
            )
        if not t.is_floating_point():
            raise InputError(f"{path}: tensor {name} is {t.dtype}; expected floating point")
        if not bool(torch.isfinite(t).all()):
            raise InputError(f"{path}: tensor {name} holds NaN or infinite values")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise InputError(
            f"{path}: weights do not match {CONFIG_NAME}: tensor {extra[0]} is not in the network"
        )
