"""``deepscope acquire`` and ``deepscope calibrate``."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepscope.cli import common_options, emit_json
from deepscope.paths import check_output_file

if TYPE_CHECKING:
    from acquire.backends import Scope
    from acquire.profile import MicroscopeProfile


def _backend_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--simulate", action="store_true", help="use the simulated microscope (the default)"
    )
    g.add_argument("--mm-config", metavar="FILE", help="Micro-Manager hardware configuration")
    g.add_argument(
        "--zmq-port", type=int, metavar="N", help="running Micro-Manager's ZMQ server port"
    )
    p.add_argument("--seed", type=int, default=0, help="simulated microscope seed (default 0)")
    p.add_argument("--profile", metavar="FILE", help="microscope profile (from 'calibrate')")


@contextlib.contextmanager
def _scope(args: argparse.Namespace, specimen: str = "tissue") -> Iterator[Scope]:
    from acquire import backends

    if args.zmq_port is not None:
        with backends.java_scope(args.zmq_port) as scope:
            yield scope
        return
    if args.mm_config:
        core = backends.config_core(args.mm_config)
    else:
        from simulators import make_core

        core = make_core(seed=args.seed, specimen=specimen)  # type: ignore[arg-type]
    with backends.python_scope(core) as scope:
        yield scope


def _profile(args: argparse.Namespace) -> MicroscopeProfile:
    from acquire.profile import MicroscopeProfile

    return MicroscopeProfile.from_file(args.profile) if args.profile else MicroscopeProfile()


@contextlib.contextmanager
def _ctrl_c_cancels(cancel: threading.Event) -> Iterator[None]:
    """First Ctrl-C: stop after the current event (``cancel``); a second one: interrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        sys.stderr.write("\nstopping after the current image (Ctrl-C again to force)\n")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _ask_for_oil(cancel: threading.Event) -> bool:
    if cancel.is_set():  # Ctrl-C came during the last tile
        return False
    sys.stderr.write(
        "\nApply immersion oil for the 100x objective, then press Enter (q + Enter stops): "
    )
    sys.stderr.flush()
    cancel.set()  # while waiting here, Ctrl-C interrupts at once
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        return False
    cancel.clear()
    if not answer:
        sys.stderr.write("no input (stdin closed); rerun with --resume --no-pause\n")
        return False
    return answer.strip().lower() not in {"q", "quit", "n", "no"}


def _acquire(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from acquire.plan import AcquisitionPlan
    from acquire.runner import AcquisitionProgress, run_acquisition

    plan = AcquisitionPlan.from_file(args.plan)
    profile = _profile(args)
    bar = tqdm(total=0, desc="acquire", unit="field", file=sys.stderr, delay=0.5)

    def progress(p: AcquisitionProgress) -> None:
        if bar.total != p.total:
            bar.total = p.total
        bar.set_postfix_str(f"{p.phase}, {p.failed} failed", refresh=False)
        bar.update(p.finished - bar.n)

    cancel = threading.Event()

    def pause() -> bool:
        bar.clear()
        return _ask_for_oil(cancel)

    # pycromanager's engine prints retries on stdout: keep stdout for the --json summary
    with (
        _scope(args) as scope,
        contextlib.redirect_stdout(sys.stderr),
        _ctrl_c_cancels(cancel),
    ):
        try:
            summary = run_acquisition(
                plan,
                Path(args.out),
                scope,
                profile=profile,
                resume=args.resume,
                pause_for_oil=None if args.no_pause else pause,
                progress=progress,
                cancel=cancel,
            )
        finally:
            bar.close()
    if args.json:
        emit_json(summary.to_dict())
    else:
        print(
            f"{summary.done} of {summary.total} fields done, {summary.failed} failed, "
            f"{summary.skipped} from before; {summary.elapsed_s:.1f} s -> {summary.out_dir}",
            file=sys.stderr,
        )
        for field_id, reason in summary.failures:
            print(f"  failed {field_id}: {reason}", file=sys.stderr)
    if summary.cancelled:
        print(
            "stopped; completed fields are kept, rerun with --resume to continue", file=sys.stderr
        )
        return 130
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from acquire.calibrate import calibrate, calibrated_profile
    from acquire.plan import CameraROI

    check_output_file(args.out)  # before the stage and turret move
    profile = _profile(args)
    roi = CameraROI(width=args.roi, height=args.roi) if args.roi else None
    with _scope(args, specimen="usaf") as scope:
        result = calibrate(
            scope,
            profile,
            tile_objective=args.tile_objective,
            target_objective=args.target_objective,
            x_um=args.x,
            y_um=args.y,
            z_um=args.z,
            roi=roi,
        )
    calibrated_profile(profile, result, args.tile_objective, args.target_objective).to_file(
        args.out
    )
    out: dict[str, Any] = result.model_dump(mode="json")
    out["profile"] = str(args.out)
    if args.json:
        emit_json(out)
    else:
        c = result.calibration
        print(
            f"{args.target_objective} vs {args.tile_objective}: dx {c.dx_um:+.3f} um, "
            f"dy {c.dy_um:+.3f} um, dz {c.dz_um:+.3f} um (match {result.match_score:.2f}) "
            f"-> {args.out}",
            file=sys.stderr,
        )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``calibrate`` and ``acquire`` to the ``deepscope`` parser."""
    cal = sub.add_parser(
        "calibrate",
        parents=[common_options()],
        help="measure the 100x objective's xy/z offsets from the 40x -> microscope profile",
        description=(
            "Snap both objectives at the same stage position, focus each by a z scan, register "
            "the 100x image onto the 40x one and store the offsets in a microscope profile. Use "
            "a thin specimen with structure (the simulator uses its USAF target)."
        ),
    )
    _backend_options(cal)
    cal.add_argument("--x", type=float, help="stage x in um (default: current)")
    cal.add_argument("--y", type=float, help="stage y in um (default: current)")
    cal.add_argument("--z", type=float, help="focus scan centre in um (default: current)")
    cal.add_argument("--roi", type=int, default=256, help="square camera ROI in px (0: full)")
    cal.add_argument("--tile-objective", default="40x")
    cal.add_argument("--target-objective", default="100x")
    cal.add_argument("--out", required=True, metavar="PROFILE", help="profile .yaml or .json")
    cal.set_defaults(func=_calibrate)

    acq = sub.add_parser(
        "acquire",
        parents=[common_options()],
        help="paired 40x tiles + 100x fields -> dataset directory",
        description=(
            "Run an acquisition plan: all 40x tiles, a pause for immersion oil, then all 100x "
            "fields, one OME-TIFF per field plus manifest.jsonl. Interrupted runs continue "
            "with --resume."
        ),
    )
    acq.add_argument("plan", help="plan file (.yaml or .json)")
    acq.add_argument("--out", required=True, metavar="DIR", help="dataset directory")
    acq.add_argument("--resume", action="store_true", help="continue a dataset of the same plan")
    acq.add_argument("--no-pause", action="store_true", help="do not wait for oil before 100x")
    _backend_options(acq)
    acq.set_defaults(func=_acquire)
