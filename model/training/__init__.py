"""Training and evaluation of the Deep Learning Microscopy network.

``train_model`` is imported lazily so that ``deepscope --help`` does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from model.training.train import train_model

__all__ = ["train_model"]


def __getattr__(name: str) -> Any:
    if name == "train_model":
        from model.training.train import train_model

        return train_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
