"""User and data files (JSON, or YAML) read into validated pydantic models, with one-line errors.

Plans, profiles, dataset and pairs descriptions, model and training configs all load through
:func:`load_validated`: read the UTF-8 text, parse it (JSON for ``.json``, YAML otherwise),
check that it is a mapping, validate it. Every failure is one
:class:`~deepscope.errors.InputError` line naming the file and what was expected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from deepscope.errors import InputError, describe_validation
from deepscope.paths import read_user_text

M = TypeVar("M", bound=BaseModel)


def validate_mapping(raw: Any, model: type[M], source: str, what: str) -> M:
    """Validate *raw* (as parsed from a file) into *model*; *source* names it in the error."""
    if not isinstance(raw, dict):
        raise InputError(
            f"{source}: not a valid {what}: expected a mapping of fields, got {type(raw).__name__}"
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InputError(
            f"{source}: not a valid {what}: {describe_validation(exc.errors(), at_most=1)}"
        ) from exc


def load_validated(path: str | Path, model: type[M], what: str) -> M:
    """Read *path* (JSON for ``.json``, else YAML) into *model*, *what* naming it in errors."""
    p = Path(path)
    text = read_user_text(p, what)
    try:
        raw = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        kind = "JSON" if p.suffix.lower() == ".json" else "YAML"
        raise InputError(f"{p}: not a valid {what}: not {kind} ({first})") from exc
    return validate_mapping(raw, model, str(p), what)
