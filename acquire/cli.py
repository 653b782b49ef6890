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

from acquire.backends import add_roi_option, add_scope_options
from deepscope.cliutil import common_options, emit_json
from deepscope.errors import InputError
from deepscope.paths import check_output_file

if TYPE_CHECKING:
    from acquire.backends import Scope
    from acquire.profile import MicroscopeProfile


def _backend_options(p: argparse.ArgumentParser) -> None:
    add_scope_options(p)
    p.add_argument("--profile", metavar="FILE", help="microscope profile (from 'calibrate')")


@contextlib.contextmanager
def _scope(args: argparse.Namespace, specimen: str = "tissue") -> Iterator[Scope]:
    from acquire.backends import ScopeChoice, open_scope

    with open_scope(ScopeChoice.from_args(args, specimen)) as scope:
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
    if args.dry_run:
        return _dry_run(args, plan, profile)
    if args.out is None:
        raise InputError("acquire needs --out DIR (the dataset directory), except with --dry-run")
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
        if not profile.calibrated:  # said once the microscope is open, before anything moves
            from acquire.profile import UNCALIBRATED

            print(f"deepscope: warning: {UNCALIBRATED} (--profile FILE)", file=sys.stderr)
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


def _dry_run(args: argparse.Namespace, plan: Any, profile: MicroscopeProfile) -> int:
    from acquire.dryrun import dry_run

    with _scope(args) as scope:
        result = dry_run(plan, scope, profile)
    if args.json:
        emit_json(result.model_dump(mode="json"))
        return 0
    print(
        f"plan '{plan.name}' is valid: {result.tiles} tiles ({plan.tiles.objective}, "
        f"{result.tile_fov_um[0]:.1f} x {result.tile_fov_um[1]:.1f} um), {result.targets} "
        f"{plan.targets.objective} fields, {result.images} images; stage travel "
        f"{result.travel_um / 1000:.2f} mm in {result.moves} moves; about "
        f"{result.estimate_s:.0f} s ({result.exposure_s:.1f} s exposure)"
        f"{'' if result.calibrated else '; uncalibrated'}; nothing was moved",
        file=sys.stderr,
    )
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from acquire.backends import roi_from_option
    from acquire.calibrate import calibrate, calibrated_profile

    check_output_file(args.out)  # before the stage and turret move
    profile = _profile(args)
    roi = roi_from_option(args.roi)
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
    add_roi_option(cal, default=[256])
    cal.add_argument("--tile-objective", default="40x")
    cal.add_argument("--target-objective", default="100x")
    cal.add_argument("-o", "--out", required=True, metavar="PROFILE", help="profile .yaml or .json")
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
    acq.add_argument("-o", "--out", metavar="DIR", help="dataset directory (required to acquire)")
    acq.add_argument("--resume", action="store_true", help="continue a dataset of the same plan")
    acq.add_argument("--no-pause", action="store_true", help="do not wait for oil before 100x")
    acq.add_argument(
        "--dry-run",
        action="store_true",
        help="check the plan on the microscope, count fields, estimate travel and time; "
        "nothing moves or is written",
    )
    _backend_options(acq)
    acq.set_defaults(func=_acquire)
