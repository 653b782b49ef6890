"""Resumable training state in one safetensors file: tensors + a JSON header; never pickled.

Weights, Adam moments and the torch RNG state are tensors; the step counters, optimizer
hyper-parameters, history and the training config travel as JSON in the
safetensors metadata. One file written atomically means a kill can never leave a mix of two steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from deepscope.atomic import atomic_path
from deepscope.errors import InputError

CHECKPOINT_NAME = "checkpoint.safetensors"


@dataclass
class TrainState:
    """Counters and bookkeeping that go with the weights into a checkpoint."""

    global_step: int = 0
    elapsed_s: float = 0.0
    best_step: int = -1
    best_val_ssim: float = -1.0
    best_val_psnr: float = float("-inf")
    bad_validations: int = 0
    stopped_early: bool = False
    loss_sum: float = 0.0
    loss_count: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def save_checkpoint(
    path: Path,
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    train_config_json: str,
) -> None:
    """Write the whole training state to *path* atomically."""
    tensors: dict[str, torch.Tensor] = {
        f"model.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()
    }
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for idx, pstate in opt["state"].items():
        for key, val in pstate.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = val
    tensors["rng.torch"] = torch.get_rng_state()
    header = {
        "state": state.__dict__,
        "param_groups": opt["param_groups"],
        "optim_scalars": scalars,
        "train_config": json.loads(train_config_json),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"deepscope": json.dumps(header)})


@dataclass
class Checkpoint:
    """A checkpoint read back: tensors and the JSON header."""

    tensors: dict[str, torch.Tensor]
    header: dict[str, Any]

    @property
    def train_config(self) -> dict[str, Any]:
        """The training config the checkpoint was made with."""
        return dict(self.header["train_config"])

    def restore(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer) -> TrainState:
        """Load weights, optimizer and RNG state; return the counters.

        A checkpoint that does not fit *net* (tensor shapes, optimizer groups, a damaged
        header) is an :class:`InputError`, not a traceback.
        """
        try:
            return self._restore(net, optimizer)
        except (RuntimeError, ValueError, KeyError, AttributeError) as exc:
            if isinstance(exc, InputError):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"checkpoint does not fit this network ({first[:200]}); "
                "pass --no-resume to start over"
            ) from exc

    def _restore(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer) -> TrainState:
        net.load_state_dict(
            {k[6:]: v for k, v in self.tensors.items() if k.startswith("model.")}, strict=True
        )
        opt_state: dict[int, dict[str, Any]] = {}
        for k, v in self.tensors.items():
            if k.startswith("optim."):
                _, idx, key = k.split(".", 2)
                opt_state.setdefault(int(idx), {})[key] = v
        for idx, vals in self.header["optim_scalars"].items():
            opt_state.setdefault(int(idx), {}).update(vals)
        optimizer.load_state_dict({"state": opt_state, "param_groups": self.header["param_groups"]})
        torch.set_rng_state(self.tensors["rng.torch"])
        try:
            return TrainState(**self.header["state"])
        except TypeError as exc:
            raise InputError(
                f"checkpoint state is from another deepscope version ({exc}); "
                "pass --no-resume to start over"
            ) from exc


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise InputError(
            f"{path}: not a readable checkpoint ({exc}); delete it to start over"
        ) from exc
    if "deepscope" not in meta:
        raise InputError(f"{path}: not a deepscope checkpoint; delete it to start over")
    try:
        header = json.loads(meta["deepscope"])
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: damaged checkpoint header; delete it to start over") from exc
    if not isinstance(header, dict):
        raise InputError(f"{path}: damaged checkpoint header; delete it to start over")
    return Checkpoint(tensors, header)
