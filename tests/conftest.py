"""Test-wide settings: headless Qt, psygnal signals for pymmcore-plus cores, torch threads."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# pymmcore-plus picks Qt signals for cores made while a QApplication exists, which needs qtpy
# and would run device callbacks on the GUI thread; deepscope uses psygnal (as gui.app does).
os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def save_tiny_model() -> Callable[[Path], Path]:
    """Save a tiny untrained RGB model (12-bit white level) into a directory; return the path."""
    from model.config import ModelConfig, NetworkConfig, Normalisation
    from model.network import DeepMicroscopyNet
    from model.store import save_model

    def save(directory: Path) -> Path:
        torch.manual_seed(0)
        net = DeepMicroscopyNet(NetworkConfig(base_channels=4, num_blocks=1, alpha=2))
        config = ModelConfig(network=net.config, normalisation=Normalisation.identity(3, 4095.0))
        return save_model(directory, net, config)

    return save
