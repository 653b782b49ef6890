"""``deepscope info``: versions, compute devices and Micro-Manager adapters in use."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys
from typing import Any

from deepscope import __version__
from deepscope.cliutil import common_options, emit_json

PACKAGES = (
    "pymmcore-plus",
    "pymmcore",
    "pycromanager",
    "torch",
    "numpy",
    "tifffile",
    "ome-types",
    "PySide6",
    "pyqtgraph",
)


def collect() -> dict[str, Any]:
    """What ``deepscope info`` reports, as a JSON-ready dict."""
    import torch

    from deepscope.mmcore import adapter_path_text

    versions = {"deepscope": __version__}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    cuda = [
        {
            "index": i,
            "name": torch.cuda.get_device_name(i),
            "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
        }
        for i in range(torch.cuda.device_count())
    ]
    return {
        "versions": versions,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch_cuda": torch.version.cuda,
        "cuda_devices": cuda,
        "micromanager_adapters": adapter_path_text(),
    }


def text_lines(info: dict[str, Any]) -> list[str]:
    """*info* (from :func:`collect`) as the lines ``deepscope info`` prints."""
    lines = [f"{name:<14} {version}" for name, version in info["versions"].items()]
    lines.append(f"{'python':<14} {info['python']} ({info['platform']})")
    devices = info["cuda_devices"]
    lines.append(f"{'cuda':<14} {info['torch_cuda'] or 'torch built without CUDA'}")
    lines += [f"  cuda:{d['index']}  {d['name']} ({d['memory_gib']} GiB)" for d in devices]
    if not devices:
        lines.append("  no CUDA device: inference and training run on the CPU")
    lines.append(f"{'mm adapters':<14} {info['micromanager_adapters']}")
    return lines


def _run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        emit_json(info)
        return 0
    print("\n".join(text_lines(info)))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``info`` to the ``deepscope`` parser."""
    p = sub.add_parser(
        "info",
        parents=[common_options()],
        help="versions, CUDA devices and Micro-Manager adapter path",
        description="Print the versions in use, the CUDA devices torch sees and where "
        "Micro-Manager's C++ device adapters are found (for --mm-config files that use them).",
    )
    p.set_defaults(func=_run)
