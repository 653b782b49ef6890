"""Evaluation against the simulator's noise-free truth, bootstrap intervals, the regions figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dlm_pairs import MAX_VALUE, one_thread, write_sim_pairs  # noqa: F401
from matplotlib.image import imread

from deepscope.errors import InputError
from deepscope.formats.pairs import Pair
from deepscope.ometiff import read_ome_tiff
from model.config import ModelConfig, NetworkConfig, Normalisation
from model.network import DeepMicroscopyNet
from model.store import save_model
from model.training.baselines import Baselines
from model.training.evaluate import METHODS, evaluate_model, prepare_evaluation, score_model
from model.training.metrics import bootstrap_mean
from model.training.regions import RegionRow, panel_titles, plot_regions
from model.training.truth import carried_truth

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sim_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "pairs"
    return write_sim_pairs(out, n_train=0, n_val=2, n_test=3, lr_size=48, truth=True)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = ModelConfig(
        network=NetworkConfig(global_skip=True, base_channels=4, num_blocks=1),
        normalisation=Normalisation.identity(3, MAX_VALUE),
    )
    out = tmp_path_factory.mktemp("model")
    save_model(out, DeepMicroscopyNet(cfg.network), cfg)  # untrained: exactly bicubic
    return out


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_fields() -> None:
    rng = np.random.default_rng(1)
    few = bootstrap_mean(rng.normal(0.8, 0.05, 6))
    many = bootstrap_mean(rng.normal(0.8, 0.05, 96))
    for iv in (few, many):
        assert iv.low is not None
        assert iv.high is not None
        assert iv.low < iv.mean < iv.high
    assert (many.high - many.low) < 0.5 * (few.high - few.low)  # ~ 1/sqrt(n)
    assert abs(many.mean - 0.8) < many.high - many.low  # it covers the true mean
    # seeded: the same fields give the same interval
    assert bootstrap_mean([0.1, 0.3, 0.2], seed=3) == bootstrap_mean([0.1, 0.3, 0.2], seed=3)
    assert bootstrap_mean([0.5, 0.5, 0.5]).low == 0.5  # no spread, no width
    one = bootstrap_mean([0.7])
    assert (one.mean, one.low, one.high, one.n) == (0.7, None, None, 1)
    assert bootstrap_mean([30.0, float("inf")]).low is None  # PSNR of an exact copy


def test_truth_on_simulator_pairs(sim_pairs: Path, model_dir: Path, tmp_path: Path) -> None:
    report = evaluate_model(model_dir, sim_pairs, tmp_path / "ev")
    assert report.truth_fields == 3
    for f in report.fields:
        assert f.truth is not None
        assert f.truth_fit is not None
        # the truth is written in the target's units: the fitted map is close to the identity
        for gain, offset in f.truth_fit:
            assert gain == pytest.approx(1.0, abs=0.03)
            assert abs(offset) < 60
        # noise-free: every method scores higher against the truth than against the target
        for m in METHODS:
            assert f.truth[m].ssim > f.target[m].ssim
        assert f.truth["network"].ssim == pytest.approx(f.truth["bicubic"].ssim, abs=1e-5)
    data = json.loads(report.json_path.read_text())
    assert set(data["intervals"]) == {"target", "truth"}
    assert set(data["baselines"]) == {"target", "truth"}  # tuned on each validation reference
    assert data["best_classical"]["truth"]["ssim"] != "bicubic"
    assert data["beats_baselines"] is False
    assert any("against the truth" in s for s in data["shortfalls"])
    md = report.markdown_path.read_text()
    assert "## Against the noise-free truth (3 fields)" in md


def test_truth_rendered_by_a_source_handed_in(
    sim_pairs: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, tuple[int, int]]] = []
    applied: list[int] = []
    apply = Baselines.apply

    def counted(self: Baselines, bicubic: np.ndarray) -> dict[str, np.ndarray]:
        applied.append(1)
        return apply(self, bicubic)

    monkeypatch.setattr(Baselines, "apply", counted)

    def render(pair: Pair, shape: tuple[int, int]) -> np.ndarray | None:
        calls.append((pair.pair_id, shape))
        if pair.pair_id != "s003":
            return None
        stack, _ = read_ome_tiff(sim_pairs / "pairs" / "s003_truth.ome.tif")
        return np.repeat(stack, 3, axis=0)  # a z-stack, collapsed like the target

    report = evaluate_model(model_dir, sim_pairs, tmp_path / "ev", truth=render)
    assert ("s003", (120, 120)) in calls
    assert report.truth_fields == 1
    assert [f.pair_id for f in report.fields if f.truth is not None] == ["s003"]
    assert "truth" not in report.baselines  # validation fields without truth: target-tuned
    assert len(applied) == 3  # once per test field, the truth field too: one tuning to apply

    def wrong(pair: Pair, shape: tuple[int, int]) -> np.ndarray:
        return np.zeros((1, shape[0] - 1, shape[1], 3))

    with pytest.raises(InputError, match="does not match its target"):
        evaluate_model(model_dir, sim_pairs, tmp_path / "ev2", truth=wrong)


def test_fields_prepared_once_score_each_model_as_its_own_evaluation(
    sim_pairs: Path, model_dir: Path, tmp_path: Path
) -> None:
    cfg = ModelConfig(
        network=NetworkConfig(global_skip=False, base_channels=4, num_blocks=1),
        normalisation=Normalisation.identity(3, MAX_VALUE),
    )
    other = tmp_path / "other"
    save_model(other, DeepMicroscopyNet(cfg.network), cfg)  # untrained, no skip: not bicubic
    rendered: list[str] = []
    carried = carried_truth(sim_pairs)

    def render(pair: Pair, shape: tuple[int, int]) -> np.ndarray | None:
        rendered.append(pair.pair_id)
        return carried(pair, shape)

    fields = prepare_evaluation(sim_pairs, truth=render)
    assert len(rendered) == 5  # 2 validation + 3 test fields, once
    network_ssim = []
    for model in (model_dir, other):
        shared = score_model(model, fields, tmp_path / model.name / "shared")
        alone = evaluate_model(model, sim_pairs, tmp_path / model.name / "alone")
        assert shared.fields == alone.fields
        assert shared.intervals == alone.intervals
        assert shared.baselines == alone.baselines
        assert shared.figure_path.is_file()
        network_ssim.append(shared.mean["network_ssim"])
    assert len(rendered) == 5  # scoring renders nothing
    assert network_ssim[0] != network_ssim[1]  # each model is scored, not the first twice
    wrong = tmp_path / "x4"
    cfg4 = cfg.model_copy(update={"network": cfg.network.model_copy(update={"scale": 4.0})})
    save_model(wrong, DeepMicroscopyNet(cfg4.network), cfg4)
    with pytest.raises(InputError, match="scale"):
        score_model(wrong, fields, tmp_path / "ev4")
    assert not (tmp_path / "ev4").exists()


def test_regions_figure_has_every_panel(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lr = rng.uniform(0, 1, (40, 40, 3))

    def img(level: float) -> np.ndarray:  # texture within the target's display range
        return level + rng.uniform(0.3, 0.6, (100, 100, 3))

    methods = {m: img(0.01 * i) for i, m in enumerate(METHODS)}
    rows = [
        RegionRow("a", lr, methods, img(0.0), img(0.02), {m: "SSIM 0.9" for m in METHODS}),
        RegionRow("b", lr, methods, img(0.0), None, {}),
    ]
    titles = panel_titles(rows)
    assert titles == [
        "40x input",
        "bicubic",
        "bicubic + Gaussian",
        "Richardson-Lucy",
        "Wiener",
        "network",
        "network x2",
        "100x target",
        "noise-free truth",
    ]
    png = imread(plot_regions(tmp_path / "r.png", rows, 2.5, crop=32))
    eight = imread(plot_regions(tmp_path / "r8.png", rows[1:], 2.5, crop=32))
    assert eight.shape[1] / png.shape[1] == pytest.approx(8 / 9, abs=0.01)  # one column a panel
    # each of the 9 columns of the first row holds an image (not blank figure background)
    top = png[: png.shape[0] // 2, :, :3]
    for k in range(9):
        col = top[:, k * top.shape[1] // 9 : (k + 1) * top.shape[1] // 9]
        assert (col.mean(axis=2) < 0.9).mean() > 0.3, k
    assert panel_titles(rows[1:]) == titles[:-1]  # no truth known: no truth column
