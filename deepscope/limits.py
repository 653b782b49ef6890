"""Size guards checked before anything is allocated: image pixels, plan fields, model weights.

Each limit has a default far above what a microscope produces and an environment variable to
raise it; a refused input gets one line naming the size, the limit and the variable.
"""

from __future__ import annotations

import os

from deepscope.errors import InputError

#: environment variable -> default limit
IMAGE_MB = ("DEEPSCOPE_MAX_IMAGE_MB", 4096)  # one image in memory (a 2048^2 RGB 7-plane stack: 176)
PLAN_FIELDS = ("DEEPSCOPE_MAX_FIELDS", 100_000)  # fields of one plan
MODEL_PARAMS = ("DEEPSCOPE_MAX_MODEL_PARAMS", 100_000_000)  # network weights (the paper's: 0.2 M)


def limit(spec: tuple[str, int]) -> int:
    """The current value of a limit (its environment variable, else the default)."""
    name, default = spec
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise InputError(f"{name}={raw!r} must be positive")
    return value


def check(value: int, spec: tuple[str, int], what: str, unit: str = "") -> None:
    """Raise :class:`InputError` if *value* exceeds the limit *spec*."""
    cap = limit(spec)
    if value > cap:
        raise InputError(
            f"{what}: {value:,}{unit} is over the limit of {cap:,}{unit}; "
            f"raise it with {spec[0]}=N if this is intended"
        )


def check_image(shape: tuple[int, ...], itemsize: int, what: str) -> None:
    """Refuse an image whose pixels would exceed the memory budget, before reading it."""
    n = 1
    for s in shape:
        n *= int(s)
    check((n * itemsize + (1 << 20) - 1) >> 20, IMAGE_MB, f"{what} of shape {tuple(shape)}", " MB")
