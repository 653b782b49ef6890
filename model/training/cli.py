"""``deepscope train`` and ``deepscope evaluate``."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from deepscope.cliutil import common_options, emit_json
from deepscope.errors import InputError
from model.training.config import TrainConfig

#: command-line flag -> TrainConfig field (flags left unset keep the config file's value)
_TRAIN_FLAGS = {
    "steps": int,
    "minutes": float,
    "batch_size": int,
    "lr": float,
    "warmup": float,
    "loss": str,
    "ssim_weight": float,
    "grad_lambda": float,
    "patch_size": int,
    "val_every": int,
    "early_stop_patience": int,
    "checkpoint_every": int,
    "seed": int,
    "device": str,
    "normalisation": str,
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to the ``deepscope`` parser."""
    p = sub.add_parser(
        "train",
        parents=[common_options()],
        help="train the network on a pairs directory",
        description=(
            "Train the Deep Learning Microscopy network (Rivenson et al. 2017) on registered "
            "40x/100x pairs: fresh random crops every step, Adam with warm-up and a cosine "
            "decay over the budget (--steps and/or --minutes), validation every --val-every "
            "steps; the model with the best validation PSNR is kept, and a warning says when it "
            "does not beat bicubic. --init fine-tunes a model (e.g. the shipped reference). "
            "Resumes from OUT/checkpoint.safetensors unless --no-resume. Launch with "
            "'torchrun --nproc-per-node N' for DistributedDataParallel."
        ),
    )
    p.add_argument("pairs", type=Path, help="pairs directory from 'deepscope register'")
    p.add_argument("-o", "--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--config", type=Path, help="TrainConfig JSON; flags below override it")
    fields = TrainConfig.model_fields
    for name, kind in _TRAIN_FLAGS.items():
        about = fields[name].description or name.replace("_", " ")
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=None,
            help=f"{about} (default {fields[name].default})",
        )
    p.add_argument(
        "--paper-network",
        action="store_true",
        help="no global bicubic skip (the paper's exact network; slower to converge)",
    )
    p.add_argument(
        "--init",
        type=Path,
        metavar="MODEL",
        help="fine-tune from this model directory (its architecture and normalisation are kept)",
    )
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.set_defaults(func=run_train)

    e = sub.add_parser(
        "evaluate",
        parents=[common_options()],
        help="SSIM/PSNR table on test fields, MTF on the USAF target",
        description=(
            "Compare bicubic, the network and the network applied twice against the 100x "
            "targets of the test fields; optionally measure the MTF on the simulated USAF target."
        ),
    )
    e.add_argument("model", type=Path, help="model directory from 'deepscope train'")
    e.add_argument("pairs", type=Path, help="pairs directory with test fields")
    e.add_argument("-o", "--out", type=Path, help="output directory (default MODEL/evaluation)")
    e.add_argument("--device", default="cpu", help="'cpu' or 'cuda[:N]'")
    e.add_argument("--no-mtf", action="store_true", help="skip the USAF-1951 MTF measurement")
    e.set_defaults(func=run_evaluate)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` from ``--config`` and the flags given."""
    base = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    updates = {k: getattr(args, k) for k in _TRAIN_FLAGS if getattr(args, k) is not None}
    if args.paper_network:
        updates["global_skip"] = False
    return TrainConfig.model_validate({**base.model_dump(), **updates})


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``deepscope train``."""
    from model.training.train import train_model

    result = train_model(
        args.pairs,
        args.out,
        train_config_from_args(args),
        init=args.init,
        resume=not args.no_resume,
    )
    if args.json:
        summary = asdict(result)
        summary["history"] = [asdict(h) for h in result.history]
        emit_json(summary)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Handler of ``deepscope evaluate``."""
    from model.training.evaluate import evaluate_model

    out = args.out or args.model / "evaluation"
    report = evaluate_model(args.model, args.pairs, out, device=args.device)
    summary: dict[str, Any] = report.summary()
    if not args.no_mtf:
        from model.training.mtf import measure_mtf

        target = getattr(args, "bar_target", None)  # the deepscope parser sets it
        if target is None:
            raise InputError("no USAF-1951 target to measure the MTF on; pass --no-mtf")
        mtf = measure_mtf(args.model, out, target, device=args.device)
        summary["mtf"] = {"json": mtf.json_path, "figure": mtf.figure_path}
    if args.json:
        emit_json(summary)
    else:
        print(report.markdown_path.read_text(encoding="utf-8"))
    return 0
