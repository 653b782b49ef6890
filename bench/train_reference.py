"""Make the reference model shipped in ``model/reference/``: data from the simulator, then train.

The data come from the demo's own stages (calibration, paired acquisition with flat field and
averaged 100x planes, registration with EDOF and the intensity match) on a slide seed the demo
and the tests do not use, over a 5x5-tile region; training is ``deepscope train``'s recipe
(``train_model``) with a step and a wall-clock budget. ``--install`` copies the model into
``model/reference/`` and records in its config how it was made (command, commit, data seed,
steps). Rerunning resumes every stage.

    python bench/train_reference.py --out /tmp/reference --minutes 55 --install
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

from app.demo import acquire_stage, calibrate_stage, demo_plan, register_stage
from model.store import CONFIG_NAME, REFERENCE_MODEL_DIR, WEIGHTS_NAME, load_config
from model.training import train_model
from model.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work directory")
    parser.add_argument("--seed", type=int, default=11, help="slide seed (the demo uses 0)")
    parser.add_argument("--fields", type=int, default=60, help="100x fields to acquire")
    parser.add_argument("--roi", type=int, default=512, help="camera ROI side")
    parser.add_argument("--steps", type=int, default=6000, help="step budget")
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--init", type=Path, default=None, help="continue from this model")
    parser.add_argument("--install", action="store_true", help="copy into model/reference/")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    plan = demo_plan(args.fields, args.roi, args.seed, tiles=5)
    plan.to_file(out / "plan.yaml")
    calibrate_stage(out, args.seed)
    acquire_stage(out, plan, args.seed)
    register_stage(out, args.seed, split=(0.85, 0.15, 0.0))
    config = TrainConfig(
        steps=args.steps, minutes=args.minutes, lr=args.lr, seed=args.seed, val_every=250
    )
    result = train_model(out / "pairs", out / "model", config, init=args.init)
    print(json.dumps({k: v for k, v in result.__dict__.items() if k != "history"}, default=str))
    if args.install:
        install(out / "model", " ".join(["python", "bench/train_reference.py", *sys.argv[1:]]))
    return 0


def install(model_dir: Path, command: str) -> None:
    """Copy the model into ``model/reference/`` with how it was made in its provenance."""
    cfg = load_config(model_dir)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    provenance = {
        **cfg.provenance,
        "pairs_dir": "simulator (see command)",
        "made_by": {"command": command, "commit": commit},
    }
    REFERENCE_MODEL_DIR.mkdir(exist_ok=True)
    shutil.copyfile(model_dir / WEIGHTS_NAME, REFERENCE_MODEL_DIR / WEIGHTS_NAME)
    text = cfg.model_copy(update={"provenance": provenance}).model_dump_json(indent=2)
    (REFERENCE_MODEL_DIR / CONFIG_NAME).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
