"""Evaluation on the test fields: every method against the 100x target and the noise-free truth.

Methods: bicubic; the classical baselines of :mod:`model.training.baselines` (bicubic +
Gaussian, Richardson-Lucy and Wiener deconvolution), each tuned on the validation fields after a
per-channel gain and offset fitted there (the intensity difference the network learns too); the
network; and "network x2", which feeds the network output (on the 100x grid) back into the
network, as in Supplementary Table 1 of Rivenson et al. (2017), then area-averages (OpenCV
``INTER_AREA``) the result, on a grid 2.5x finer than 100x, back onto the 100x grid.

Each method is scored per test field (SSIM and PSNR, the pairs' white level as data range; see
:mod:`model.training.metrics`) against the 100x target and, where the truth is known (simulated
pairs, :mod:`model.training.truth`), against the noise-free 100x image at the true pose, which
does not reward smoothing the target's noise away; the baselines scored against the truth are
tuned on the validation fields' truth when it is known. Means carry BCa bootstrap 95 %
intervals over fields, and so does each method's per-field gain over bicubic and over the best
classical baseline (the classical method with the highest mean on that metric). When the
network does not beat the best classical baseline on both metrics (against every reference
scored), the report says so in ``beats_baselines`` and a warning goes to stderr. Inference runs
through :class:`model.inference.engine.Enhancer` in fp32, as ``deepscope enhance`` does.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from deepscope.atomic import atomic_write_json, atomic_write_text
from deepscope.errors import InputError
from deepscope.formats.pairs import PairSet, load_pairset
from model.config import ModelConfig
from model.inference.engine import Enhancer
from model.network import DeepMicroscopyNet
from model.store import load_model
from model.training.baselines import (
    CLASSICAL,
    Baselines,
    Optics,
    optics_for_pairs,
    tune_baselines,
)
from model.training.data import FieldPair, load_fields
from model.training.infer import bicubic_upsample
from model.training.metrics import Interval, bootstrap_mean, ssim_psnr
from model.training.regions import LABELS, RegionRow, plot_regions
from model.training.truth import TruthSource, carried_truth, match_to_target, truth_image

log = logging.getLogger("deepscope.training")

NETWORK_METHODS = ("network", "network_x2")
METHODS = (*CLASSICAL, *NETWORK_METHODS)
METRICS = ("ssim", "psnr")
#: What the methods are scored against: the 100x target, and the noise-free truth when known.
REFERENCES = ("target", "truth")
#: Baselines are tuned on the central part of each validation field (100x pixels), for speed.
TUNE_CROP_PX = 256


@dataclass(frozen=True)
class Score:
    """SSIM and PSNR (dB) of one image against one reference."""

    ssim: float
    psnr: float


@dataclass(frozen=True)
class FieldScores:
    """Every method's scores on one test field, against the target and (if known) the truth."""

    pair_id: str
    target: dict[str, Score]
    truth: dict[str, Score] | None = None
    #: per channel ``(gain, offset)`` that brought the truth onto the target's intensities
    truth_fit: list[tuple[float, float]] | None = None


@dataclass(frozen=True)
class Gain:
    """Per-field difference ``method - baseline`` on one metric, mean and bootstrap interval."""

    method: str
    baseline: str
    metric: str
    interval: Interval


@dataclass(frozen=True)
class EvaluationReport:
    """Scores per field, means with intervals, gains, the verdict and the files written."""

    fields: list[FieldScores]
    #: ``{method}_{metric}`` -> mean against the 100x target
    mean: dict[str, float]
    #: reference -> ``{method}_{metric}`` -> mean and interval (``truth`` only when known)
    intervals: dict[str, dict[str, Interval]]
    #: reference -> gains over bicubic and over the best classical baseline
    gains: dict[str, list[Gain]]
    #: reference -> metric -> name of the best classical baseline
    best_classical: dict[str, dict[str, str]]
    beats_baselines: bool
    #: one line per metric and reference where the network falls short
    shortfalls: list[str]
    baselines: dict[str, Any]
    json_path: Path
    markdown_path: Path
    figure_path: Path
    truth_fields: int = 0

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (what ``evaluation.json`` holds besides its inputs)."""
        return {
            "beats_baselines": self.beats_baselines,
            "shortfalls": self.shortfalls,
            "best_classical": self.best_classical,
            "mean": self.mean,
            "intervals": {
                ref: {k: asdict(v) for k, v in ivs.items()} for ref, ivs in self.intervals.items()
            },
            "gains": {ref: [asdict(g) for g in gs] for ref, gs in self.gains.items()},
            "truth_fields": self.truth_fields,
            "baselines": self.baselines,
            "fields": [asdict(f) for f in self.fields],
            "json": str(self.json_path),
            "markdown": str(self.markdown_path),
            "figure": str(self.figure_path),
        }


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-average a ``(y, x, c)`` float image onto a ``height x width`` grid."""
    out = cv2.resize(image.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    return out.reshape(height, width, image.shape[2])


def _yxc(f: FieldPair) -> tuple[np.ndarray, np.ndarray]:
    return np.moveaxis(f.lr, 0, -1), np.moveaxis(f.hr, 0, -1)


def _centre(image: np.ndarray, size: int = TUNE_CROP_PX) -> np.ndarray:
    """The central ``size x size`` part of an image (all of it when smaller)."""
    y0, x0 = max(0, (image.shape[0] - size) // 2), max(0, (image.shape[1] - size) // 2)
    return image[y0 : y0 + size, x0 : x0 + size]


def _scores(images: dict[str, np.ndarray], ref: np.ndarray, max_value: float) -> dict[str, Score]:
    return {m: Score(*ssim_psnr(img, ref, max_value)) for m, img in images.items()}


def region_row(
    pair_id: str,
    lr: np.ndarray,
    images: dict[str, np.ndarray],
    refs: dict[str, np.ndarray],
    scores: dict[str, dict[str, Score]],
) -> RegionRow:
    """A figure row, each panel captioned with its own scores (target; truth SSIM).

    *scores* are reference -> method -> score of exactly these *images*.
    """
    captions = {}
    for m in images:
        target = scores["target"][m]
        captions[m] = f"SSIM {target.ssim:.3f}, {target.psnr:.1f} dB"
        if "truth" in scores:
            captions[m] += f"\ntruth SSIM {scores['truth'][m].ssim:.3f}"
    return RegionRow(pair_id, lr, images, refs["target"], refs.get("truth"), captions)


def gains_and_best(
    per_field: list[dict[str, Score]], means: dict[str, float], seed: int
) -> tuple[list[Gain], dict[str, str]]:
    """Gains over bicubic and over the best classical method; the best per metric.

    *means* are ``{method}_{metric}`` means of *per_field* (method -> score per field).
    """
    gains, best = [], {}
    for metric in METRICS:
        top = max(CLASSICAL, key=lambda m: means[f"{m}_{metric}"])
        best[metric] = top
        for baseline in dict.fromkeys(("bicubic", top)):
            for m in METHODS:
                if m == baseline or (baseline == top != "bicubic" and m in CLASSICAL):
                    continue
                diff = [getattr(s[m], metric) - getattr(s[baseline], metric) for s in per_field]
                gains.append(Gain(m, baseline, metric, bootstrap_mean(diff, seed=seed)))
    return gains, best


def _intervals(per_field: list[dict[str, Score]], seed: int) -> dict[str, Interval]:
    return {
        f"{m}_{metric}": bootstrap_mean([getattr(s[m], metric) for s in per_field], seed=seed)
        for m in METHODS
        for metric in METRICS
    }


def network_shortfalls(ref: str, means: dict[str, float], best: dict[str, str]) -> list[str]:
    """One line per metric on which the network's mean does not beat the best classical one."""
    out = []
    for metric in METRICS:
        net, top = means[f"network_{metric}"], means[f"{best[metric]}_{metric}"]
        if net <= top:
            unit = " dB" if metric == "psnr" else ""
            out.append(
                f"against the {ref}, the network's mean {metric.upper()} {net:.4f}{unit} does not "
                f"beat {LABELS[best[metric]]} ({top:.4f}{unit})"
            )
    return out


@dataclass(frozen=True)
class EvalField:
    """One test field, ready to score a model on: its input, references and classical scores."""

    pair_id: str
    #: the 40x input, ``(y, x, c)``
    lr: np.ndarray
    #: reference name -> image: the 100x target, and the noise-free truth when known
    refs: dict[str, np.ndarray]
    #: reference -> classical method -> score
    classical: dict[str, dict[str, Score]]
    #: per channel ``(gain, offset)`` that brought the truth onto the target's intensities
    truth_fit: list[tuple[float, float]] | None
    #: the classical images tuned on the targets, kept for the fields ``regions.png`` shows
    shown: dict[str, np.ndarray] | None
    #: their scores (reference -> method -> score), for the figure's captions
    shown_scores: dict[str, dict[str, Score]] | None


@dataclass(frozen=True)
class EvalFields:
    """What scoring does not depend on the model for: made once, any number of models scored.

    :func:`prepare_evaluation` loads the test fields, renders their truth, tunes the classical
    baselines on the validation fields and scores them; :func:`score_model` scores a model.
    """

    pairs_dir: Path
    pairset: PairSet
    fields: list[EvalField]
    tuned: dict[str, Baselines]


def prepare_evaluation(
    pairs_dir: str | Path,
    *,
    regions: int = 3,
    optics: Optics | None = None,
    truth: TruthSource | None = None,
) -> EvalFields:
    """Load the test fields, tune the classical baselines on the validation fields, score them.

    *regions* test fields keep their classical images for the figure; *optics* and *truth* are
    as in :func:`evaluate_model`. Raises :class:`InputError` without test or validation pairs.
    """
    pairs_dir = Path(pairs_dir)
    return _prepare(pairs_dir, load_pairset(pairs_dir), regions, optics, truth)


def _prepare(
    pairs_dir: Path,
    pairset: PairSet,
    regions: int,
    optics: Optics | None,
    truth: TruthSource | None,
) -> EvalFields:
    tests = load_fields(pairs_dir, pairset, "test")
    if not tests:
        raise InputError(f"{pairs_dir} has no accepted test pairs to evaluate on")
    vals = load_fields(pairs_dir, pairset, "val")
    if not vals:
        raise InputError(
            f"{pairs_dir} has no accepted validation pairs to tune the classical baselines on"
        )
    scale, white = pairset.scale, pairset.max_value
    source = truth or carried_truth(pairs_dir)
    by_id = {p.pair_id: p for p in pairset.accepted()}

    def references(f: FieldPair) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], Any]:
        """Input, bicubic, and the field's references (target; truth when known)."""
        lr, hr = _yxc(f)
        refs = {"target": hr}
        clean = truth_image(source, by_id[f.pair_id], hr, pairset.edof)
        fit = None
        if clean is not None:
            refs["truth"], fit = match_to_target(clean, hr)
        return lr, bicubic_upsample(lr, scale), refs, fit

    val = [references(f) for f in tqdm(vals, desc="tune baselines", unit="field", leave=False)]
    tuned = {
        ref: tune_baselines(
            [(_centre(bic), _centre(refs[ref])) for _, bic, refs, _ in val],
            optics or optics_for_pairs(pairset),
            pitch_um=pairset.hr_pixel_size_um,
            pixel_um=pairset.lr_pixel_size_um,
            max_value=white,
        )
        for ref in REFERENCES
        if all(ref in refs for _, _, refs, _ in val)
    }
    fields: list[EvalField] = []
    for f in tqdm(tests, desc="score baselines", unit="field", leave=False):
        lr, bic, refs, fit = references(f)
        # the truth is scored with baselines tuned on the validation truth, when known
        tuning = {ref: ref if ref in tuned else "target" for ref in refs}
        applied = {key: tuned[key].apply(bic) for key in set(tuning.values())}
        images = {ref: applied[key] for ref, key in tuning.items()}
        classical = {ref: _scores(images[ref], image, white) for ref, image in refs.items()}
        shown, shown_scores = None, None
        if len(fields) < regions:
            shown = images["target"]
            # against a reference with a tuning of its own, they have scores of their own
            shown_scores = {
                ref: classical[ref] if tuning[ref] == "target" else _scores(shown, image, white)
                for ref, image in refs.items()
            }
        fields.append(EvalField(f.pair_id, lr, refs, classical, fit, shown, shown_scores))
    return EvalFields(pairs_dir, pairset, fields, tuned)


def evaluate_model(
    model_dir: str | Path,
    pairs_dir: str | Path,
    out_dir: str | Path,
    *,
    device: str = "cpu",
    regions: int = 3,
    optics: Optics | None = None,
    truth: TruthSource | None = None,
    seed: int = 0,
) -> EvaluationReport:
    """Score every method on the test fields; write ``evaluation.json``/``.md`` and ``regions.png``.

    Parameters
    ----------
    model_dir, pairs_dir, out_dir
        The trained model, the registered pairs, where to write.
    device
        Torch device of the network.
    regions
        Test fields shown in ``regions.png``.
    optics
        Optics of the input objective for the deconvolution PSF (default: from the pairs' source
        dataset, else 40x/0.95 with a 0.55 condenser).
    truth
        Source of the noise-free truth (default: the truth files the pairs carry, if any).
    seed
        Seed of the bootstrap.
    """
    # the model is checked against the pairs before the baselines are tuned
    pairs_dir = Path(pairs_dir)
    pairset = load_pairset(pairs_dir)
    model = _load(model_dir, pairset, device)
    fields = _prepare(pairs_dir, pairset, regions, optics, truth)
    return _score(model_dir, model, fields, Path(out_dir), device, regions, seed)


def score_model(
    model_dir: str | Path,
    fields: EvalFields,
    out_dir: str | Path,
    *,
    device: str = "cpu",
    regions: int = 3,
    seed: int = 0,
) -> EvaluationReport:
    """:func:`evaluate_model` on fields prepared once by :func:`prepare_evaluation`.

    ``regions.png`` shows at most as many fields as were prepared with their images.
    """
    model = _load(model_dir, fields.pairset, device)
    return _score(model_dir, model, fields, Path(out_dir), device, regions, seed)


def _load(
    model_dir: str | Path, pairset: PairSet, device: str
) -> tuple[DeepMicroscopyNet, ModelConfig]:
    return load_model(
        model_dir, expect_scale=pairset.scale, expect_channels=pairset.channels, device=device
    )


def _score(
    model_dir: str | Path,
    model: tuple[DeepMicroscopyNet, ModelConfig],
    prepared: EvalFields,
    out_dir: Path,
    device: str,
    regions: int,
    seed: int,
) -> EvaluationReport:
    """Run the network on the prepared test fields; write and return the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pairset = prepared.pairset
    scale, white = pairset.scale, pairset.max_value
    enhancer = Enhancer(*model, device=device, precision="fp32")
    scores: list[FieldScores] = []
    rows: list[RegionRow] = []
    for f in tqdm(prepared.fields, desc="evaluate", unit="field", leave=False):
        once = enhancer.enhance(f.lr)
        twice = area_resize(enhancer.enhance(once), *once.shape[:2])
        nets = {"network": once, "network_x2": twice}
        net_scores = {ref: _scores(nets, image, white) for ref, image in f.refs.items()}
        per_ref = {ref: f.classical[ref] | net_scores[ref] for ref in f.refs}
        scores.append(FieldScores(f.pair_id, per_ref["target"], per_ref.get("truth"), f.truth_fit))
        if len(rows) < regions and f.shown is not None and f.shown_scores is not None:
            captioned = {ref: f.shown_scores[ref] | net_scores[ref] for ref in f.refs}
            rows.append(region_row(f.pair_id, f.lr, f.shown | nets, f.refs, captioned))
    by_ref = {"target": [s.target for s in scores]}
    with_truth = [s.truth for s in scores if s.truth is not None]
    if with_truth:
        by_ref["truth"] = with_truth
    intervals = {ref: _intervals(pf, seed) for ref, pf in by_ref.items()}
    gains, best, shortfalls = {}, {}, []
    for ref, pf in by_ref.items():
        means = {k: iv.mean for k, iv in intervals[ref].items()}
        gains[ref], best[ref] = gains_and_best(pf, means, seed)
        shortfalls += network_shortfalls(ref, means, best[ref])
    for line in shortfalls:
        log.warning("network does not beat the baselines: %s", line)
    report = EvaluationReport(
        fields=scores,
        mean={k: iv.mean for k, iv in intervals["target"].items()},
        intervals=intervals,
        gains=gains,
        best_classical=best,
        beats_baselines=not shortfalls,
        shortfalls=shortfalls,
        baselines={ref: b.settings() for ref, b in prepared.tuned.items()},
        json_path=out_dir / "evaluation.json",
        markdown_path=out_dir / "evaluation.md",
        figure_path=out_dir / "regions.png",
        truth_fields=len(with_truth),
    )
    atomic_write_json(
        report.json_path,
        {
            "model_dir": str(Path(model_dir).resolve()),
            "pairs_dir": str(prepared.pairs_dir.resolve()),
            "max_value": white,
            "methods": {m: LABELS[m] for m in METHODS},
            "network_x2": "output fed back into the network, area-averaged to the 100x grid",
            "intervals": "BCa bootstrap 95 % over test fields (scipy.stats.bootstrap, 9999)",
            "truth": "noise-free 100x at the true pose, per-channel gain/offset fitted to target",
            **report.summary(),
        },
    )
    atomic_write_text(report.markdown_path, evaluation_markdown(report))
    plot_regions(report.figure_path, rows, scale)
    log.info(
        "test SSIM bicubic %.4f network %.4f x2 %.4f",
        report.mean["bicubic_ssim"],
        report.mean["network_ssim"],
        report.mean["network_x2_ssim"],
    )
    return report


def _ci(iv: Interval, digits: int) -> str:
    if iv.low is None or iv.high is None:
        return f"{iv.mean:.{digits}f}"
    return f"{iv.mean:.{digits}f} [{iv.low:.{digits}f}, {iv.high:.{digits}f}]"


def evaluation_markdown(report: EvaluationReport) -> str:
    """The report as Markdown: verdict, means with intervals, gains, per-field scores."""
    n = len(report.fields)
    if report.beats_baselines:
        verdict = "The network beats bicubic and every classical baseline on SSIM and PSNR."
    else:
        verdict = "**The network does not beat the baselines:**\n\n" + "\n".join(
            f"- {line}" for line in report.shortfalls
        )
    lines = [f"# Evaluation on {n} test field(s)", "", verdict, ""]
    for ref, b in report.baselines.items():
        lines.append(
            f"Baselines tuned on the validation {ref}s: Gaussian sigma {b['gaussian_sigma_px']} px "
            f"(100x), Richardson-Lucy {b['richardson_lucy_iterations']} iterations, Wiener "
            f"balance {b['wiener_balance']}; PSF of NA {b['effective_na']:.3f} (objective "
            f"{b['optics']['objective_na']}, condenser {b['optics']['condenser_na']})."
        )
    lines += [
        "",
        "Means with BCa bootstrap 95 % intervals over fields.",
    ]
    for ref, ivs in report.intervals.items():
        title = "100x target" if ref == "target" else "noise-free truth"
        count = n if ref == "target" else report.truth_fields
        lines += [
            "",
            f"## Against the {title} ({count} fields)",
            "",
            "| method | SSIM | PSNR (dB) |",
            "|---|---|---|",
        ]
        lines += [
            f"| {LABELS[m]} | {_ci(ivs[f'{m}_ssim'], 4)} | {_ci(ivs[f'{m}_psnr'], 2)} |"
            for m in METHODS
        ]
        best = report.best_classical[ref]
        lines += [
            "",
            f"Gains (per-field differences; best classical: SSIM {LABELS[best['ssim']]}, "
            f"PSNR {LABELS[best['psnr']]}):",
            "",
            "| method | over | metric | gain |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {LABELS[g.method]} | {LABELS[g.baseline]} | {g.metric.upper()} | "
            f"{_ci(g.interval, 4 if g.metric == 'ssim' else 2)} |"
            for g in report.gains[ref]
        ]
    lines += ["", "## Per field (SSIM / PSNR dB against the target; truth SSIM)", ""]
    lines += [
        "| field | " + " | ".join(LABELS[m] for m in METHODS) + " |",
        "|---|" + "---|" * len(METHODS),
    ]
    for f in report.fields:
        cells = []
        for m in METHODS:
            cell = f"{f.target[m].ssim:.4f} / {f.target[m].psnr:.2f}"
            if f.truth is not None:
                cell += f"; {f.truth[m].ssim:.4f}"
            cells.append(cell)
        lines.append(f"| {f.pair_id} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
