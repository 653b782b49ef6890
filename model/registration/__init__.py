"""Aligning 100x fields to the 40x mosaic to make training pairs.

``register_dataset(dataset_dir, out_dir, options, progress)`` is the entry point; see
:mod:`model.registration.pairing` for the steps and :mod:`model.registration.sources` for the
accepted inputs (a deepscope dataset, or a folder of OME-TIFFs acquired elsewhere). The names
are imported on first use, so that ``deepscope --help`` does not load OpenCV.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from model.registration.pipeline import (
        RegistrationOptions,
        RegistrationSummary,
        register_dataset,
    )

__all__ = ["RegistrationOptions", "RegistrationSummary", "register_dataset"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from model.registration import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
