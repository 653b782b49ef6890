"""The simulator renders the noise-free truth of registered pairs at the true pose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dlm_pairs import MAX_VALUE, one_thread, simulated_pairs_dataset  # noqa: F401
from scipy import ndimage

from deepscope.formats.pairs import load_pair, load_pairset
from model.config import ModelConfig, NetworkConfig, Normalisation
from model.network import DeepMicroscopyNet
from model.registration import RegistrationOptions, register_dataset
from model.registration.focus import to_gray
from model.store import save_model
from model.training.evaluate import evaluate_model
from model.training.truth import match_to_target, truth_image
from simulators import make_core
from simulators.truth import PairTruth, record_snaps

pytestmark = pytest.mark.usefixtures("one_thread")

SEED = 5
SENSOR = 192
OFFSETS_PX = ((0, 0), (2.5, 0), (-2.5, 0), (0, 2.5), (0, -2.5))  # one 40x pixel


def _ncc(a: np.ndarray, b: np.ndarray, margin: int = 8) -> float:
    """Correlation coefficient of two images inside a margin."""
    a, b = a[margin:-margin, margin:-margin], b[margin:-margin, margin:-margin]
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.slow
def test_truth_of_registered_simulator_pairs(tmp_path: Path) -> None:
    core = make_core(seed=SEED, sensor=(SENSOR, SENSOR))
    record_snaps(core, tmp_path / "snaps.jsonl")
    sim = simulated_pairs_dataset(
        tmp_path / "ds", seed=SEED, sensor=SENSOR, n_targets=6, z_slices=3, core=core
    )
    pairs_dir = tmp_path / "pairs"
    register_dataset(sim.path, pairs_dir, RegistrationOptions(seed=0, split=(0.5, 0.25, 0.25)))
    pairset = load_pairset(pairs_dir)
    accepted = pairset.accepted()
    assert len(accepted) >= 4
    source = PairTruth(sim.path, pairs_dir, tmp_path / "snaps.jsonl", SEED)
    for pair in accepted:
        _, hr = load_pair(pairs_dir, pair)
        stack = source(pair, hr.shape[:2])
        assert stack is not None
        assert stack.shape == (3, *hr.shape)  # one plane per slice of the 100x z-stack
        truth = truth_image(source, pair, hr.astype(np.float32), pairset.edof)
        assert truth is not None
        matched, fits = match_to_target(truth, hr)
        # after the pair's recorded intensity match, a residual gain near 1 (the flat field keeps
        # the mean, the truth is the centre's; a field matched with a gain of 0.4 keeps ~1.2)
        assert all(0.75 < gain < 1.3 for gain, _ in fits), fits
        # the truth lies on the target: same structure, within the registration error
        a, b = to_gray(matched), to_gray(hr.astype(np.float32))
        ncc = {d: _ncc(ndimage.shift(a, d, order=1), b) for d in OFFSETS_PX}
        assert ncc[0, 0] > 0.9
        # the truth lies on the target: moved by one 40x pixel either way, it fits worse
        assert ncc[0, 0] == max(ncc.values()), (pair.pair_id, ncc)
    cfg = ModelConfig(
        network=NetworkConfig(global_skip=True, base_channels=4, num_blocks=1),
        normalisation=Normalisation.identity(3, MAX_VALUE),
    )
    save_model(tmp_path / "m", DeepMicroscopyNet(cfg.network), cfg)
    report = evaluate_model(tmp_path / "m", pairs_dir, tmp_path / "ev", truth=source)
    assert report.truth_fields == len(pairset.accepted("test")) > 0
    assert "truth" in report.baselines  # the validation fields' truth is known too
