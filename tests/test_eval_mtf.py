"""MTF on the simulated USAF-1951 target: geometry, bar contrast, files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dlm_pairs import one_thread  # noqa: F401 (fixture)

from model.config import ModelConfig, NetworkConfig, Normalisation
from model.network import DeepMicroscopyNet
from model.store import save_model
from model.training.mtf import Grid, bar_contrast, measure_mtf
from simulators.targets import SimulatedUsafTarget

pytestmark = pytest.mark.usefixtures("one_thread")


def _bars(grid: Grid, shape: tuple[int, int], bar_um: float) -> np.ndarray:
    """Ideal vertical bars (dark 0.2, bright 1.0) centred at x = 0, period 2 * bar_um."""
    xs = grid.x0_um + np.arange(shape[1]) * grid.pitch_um
    dark = (np.abs(xs) < 2.5 * bar_um) & (np.floor(xs / bar_um + 0.5) % 2 == 0)
    return np.where(dark, 0.2, 1.0)[None, :].repeat(shape[0], 0)


def test_bar_contrast_of_ideal_bars() -> None:
    grid = Grid(-20.0, -20.0, 0.05)
    img = _bars(grid, (800, 800), 2.0)
    assert bar_contrast(img, grid, 0.0, 0.0, 2.0, along_x=True) == pytest.approx(0.8 / 1.2)
    # no modulation along y for vertical bars
    assert bar_contrast(img, grid, 0.0, 0.0, 2.0, along_x=False) == pytest.approx(0.0, abs=1e-9)
    # a grid shifted and resampled like the network output keeps the slide coordinates
    up = grid.upsampled(2.5)
    assert up.pitch_um == pytest.approx(0.02)
    assert up.x0_um == pytest.approx(grid.x0_um - 0.3 * grid.pitch_um)
    assert grid.crop(10, 4).x0_um == pytest.approx(grid.x0_um + 4 * grid.pitch_um)


def test_mtf_on_usaf_target(tmp_path: Path) -> None:
    cfg = ModelConfig(
        network=NetworkConfig(global_skip=True, base_channels=4, num_blocks=1),
        normalisation=Normalisation.identity(3, 4095),
    )
    save_model(tmp_path / "m", DeepMicroscopyNet(cfg.network), cfg)
    report = measure_mtf(
        tmp_path / "m", tmp_path / "mtf", SimulatedUsafTarget(), groups=(9, 10, 11)
    )
    els = report.elements
    assert [(e.group, e.element) for e in els] == [(g, e) for g in (9, 10, 11) for e in range(1, 7)]
    inp = np.array([e.input_contrast for e in els])
    target = np.array([e.target_contrast for e in els], dtype=float)
    # the 40x/0.95 image loses contrast with frequency; group 9 is resolved, 11.3+ is not
    assert inp[0] > 0.6
    assert np.all(np.abs(inp[-4:]) < 0.1)
    assert np.all(np.diff(inp[:12]) < 0)
    # the 100x/1.4 objective resolves what 40x cannot: the network's target is reachable
    assert np.all(target[:14] > inp[:14] + 0.05)
    # an untrained global-skip network is bicubic: both paths land on the same slide geometry
    for e in els:
        assert e.network_contrast == pytest.approx(e.bicubic_contrast, abs=1e-4)
    data = json.loads(report.json_path.read_text())
    assert len(data["elements"]) == 18
    assert report.markdown_path.read_text().count("\n") == 2 + 18
    assert report.figure_path.read_bytes()[:4] == b"\x89PNG"
