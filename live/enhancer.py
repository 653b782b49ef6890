"""What live mode needs of a model: the seam between the pipeline and :mod:`model.inference`.

:class:`model.inference.engine.Enhancer` is the implementation; the tests' slow and deferred
enhancers are others. The pipeline depends on this protocol only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from model.inference.engine import Output
    from model.inference.view import ViewRequest


@runtime_checkable
class FrameEnhancer(Protocol):
    """Enhances camera frames for live mode."""

    @property
    def scale(self) -> float:
        """Output/input pixel density (2.5 for 40x -> 100x)."""
        ...

    @property
    def overlaps(self) -> bool:
        """True when :meth:`enhance_async` returns before the work is done (CUDA)."""
        ...

    def pixel_size_mismatch(self, pixel_size_um: float | None) -> str | None:
        """Why frames of *pixel_size_um* do not fit the model, or None when they do."""
        ...

    def enhance_async(
        self,
        image: np.ndarray,
        *,
        self_feed: bool = False,
        full: bool = True,
        view: ViewRequest | None = None,
        dtype: np.dtype | type | None = None,
    ) -> Callable[[], Output]:
        """Start enhancing *image*; the returned callable waits for the result.

        See :meth:`model.inference.engine.Enhancer.enhance_async` for the arguments.
        """
        ...
