"""Time scoring two models on a demo's test fields: two evaluations, or one preparation.

``twice`` runs :func:`evaluate_model` per model (truth, baseline tuning and classical scores
each time); ``once`` runs :func:`prepare_evaluation` once and :func:`score_model` per model.
The models are the demo's fine-tuned one and ``model/reference``. Run one mode at a time:

    python bench/bench_evaluate_once.py /tmp/demo8 twice
    python bench/bench_evaluate_once.py /tmp/demo8 once
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from app.demo import demo_truth
from model.store import REFERENCE_MODEL_DIR
from model.training.evaluate import evaluate_model, prepare_evaluation, score_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, help="a `deepscope demo --out` directory")
    parser.add_argument("mode", choices=("twice", "once"))
    args = parser.parse_args()
    d = args.demo
    truth = demo_truth(d)
    models = [d / "model", REFERENCE_MODEL_DIR]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if args.mode == "twice":
            for i, model in enumerate(models):
                evaluate_model(model, d / "pairs", Path(tmp, str(i)), truth=truth)
        else:
            fields = prepare_evaluation(d / "pairs", truth=truth)
            for i, model in enumerate(models):
                score_model(model, fields, Path(tmp, str(i)))
        print(f"{args.mode}: {time.perf_counter() - start:.1f} s for {len(models)} models")


if __name__ == "__main__":
    main()
