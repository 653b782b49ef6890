"""Subcommands of this area (being built; see the open issue)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to the ``deepscope`` parser."""
