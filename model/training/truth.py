"""The noise-free truth of simulated test fields, brought onto the target's intensity scale.

A *truth source* answers, for one pair and the shape of its 100x target, the noise-free 100x
image of the same area at the true pose, as a ``(z, y, x, c)`` stack (one plane, or the planes
of the target's z-stack, collapsed here exactly as registration collapsed the target), or
``None`` when it does not know the field. Pairs written on the simulator carry it as a file
(:attr:`deepscope.formats.pairs.Pair.truth`); a source can also render it at evaluation time,
handed in by the caller (``model`` never imports the simulator).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from deepscope.errors import InputError
from deepscope.formats.pairs import Pair
from deepscope.ometiff import read_ome_tiff
from deepscope.paths import safe_join
from model.registration.pairing import collapse_stack
from model.training.intensity import LinearMap, apply_linear, fit_linear

TruthSource = Callable[[Pair, tuple[int, int]], np.ndarray | None]


def carried_truth(pairs_dir: str | Path) -> TruthSource:
    """The truth files the pairs carry (``Pair.truth``), read from *pairs_dir*."""

    def source(pair: Pair, shape: tuple[int, int]) -> np.ndarray | None:
        if pair.truth is None:
            return None
        stack, _ = read_ome_tiff(safe_join(pairs_dir, pair.truth))
        return np.asarray(stack)

    return source


def truth_image(
    source: TruthSource, pair: Pair, target: np.ndarray, edof: bool
) -> np.ndarray | None:
    """The truth of *pair* as a ``(y, x, c)`` float image the shape of *target*, or ``None``.

    A z-stack is collapsed as the target was (EDOF or best-focus slice), and the intensity match
    registration applied to the target (``Pair.intensity``) is applied to it too.
    """
    stack = source(pair, (target.shape[0], target.shape[1]))
    if stack is None:
        return None
    stack = np.asarray(stack)
    if stack.ndim == 3:
        stack = stack[None]
    if stack.ndim != 4 or stack.shape[1:] != target.shape:
        raise InputError(
            f"pair {pair.pair_id}: truth {stack.shape} does not match its target {target.shape}"
        )
    image, _, _ = collapse_stack(stack, edof)
    if pair.intensity is not None:
        image = apply_linear(
            image, list(zip(pair.intensity.gain, pair.intensity.offset, strict=True))
        )
    return image


def match_to_target(truth: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, LinearMap]:
    """The truth mapped by the per-channel ``gain * truth + offset`` fitted to the (noisy) target.

    Two numbers per channel absorb any global intensity scale the pipeline applied to the target
    (flat field, linear match) and cannot learn detail or noise; they are reported with the
    scores so that a gain far from 1 shows.
    """
    fits = fit_linear([(truth, target)])
    return apply_linear(truth, fits), fits
