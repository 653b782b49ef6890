"""Test-wide settings: headless Qt, psygnal signals for pymmcore-plus cores, torch threads."""

from __future__ import annotations

import os

import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# pymmcore-plus picks Qt signals for cores made while a QApplication exists, which needs qtpy
# and would run device callbacks on the GUI thread; deepscope uses psygnal (as gui.app does).
os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")
torch.set_num_threads(min(2, os.cpu_count() or 1))
