"""What every subcommand shares: the common options and the ``--json`` summary.

Every area's ``cli`` module imports these; :mod:`app.cli` (the entry point, which imports
those modules) sits above them all.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand takes: ``--json`` and ``-v``; pass as ``parents=[...]``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output on stderr (-vv: debug)"
    )
    return p


def emit_json(summary: Any) -> None:
    """Print *summary* as one JSON document on stdout (logs and progress go to stderr)."""
    sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    sys.stdout.flush()
