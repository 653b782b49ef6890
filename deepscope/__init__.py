"""deepscope: paired 40x/100x acquisition and deep-learning enhancement for Micro-Manager."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deepscope")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
