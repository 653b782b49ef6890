"""Bounded fuzzing (hypothesis) of the files a user hands deepscope: plans, profiles, model
configs and OME-XML headers. Every input ends in a value or one error line (an exception that
:func:`app.cli.error_line` maps), never a traceback, and no existing file changes."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acquire.plan import AcquisitionPlan
from acquire.profile import MicroscopeProfile
from app.cli import error_line
from deepscope.ometiff import ImageMeta, PlaneMeta, read_ome_tiff, write_ome_tiff
from model.config import ModelConfig, NetworkConfig, Normalisation
from model.store import load_config

#: examples per target; the figures in RELIABILITY.md are for these settings
EXAMPLES = 150
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

PLAN = yaml.safe_load(Path(__file__).parents[1].joinpath("examples/plan_small.yaml").read_text())
PROFILE = MicroscopeProfile().model_dump(mode="json")
MODEL = ModelConfig(
    network=NetworkConfig(), normalisation=Normalisation.identity(3, 4095.0)
).model_dump(mode="json")

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """*base* with a few values replaced, keys deleted or unknown keys added."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            return draw(values)
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace" or isinstance(parent, list):
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        else:
            parent[draw(st.text(max_size=8))] = draw(values)
    return doc


def _encode(draw: st.DrawFn, doc: Any) -> bytes:
    """The document as JSON or YAML text, sometimes cut short or with a byte changed."""
    text = json.dumps(doc, allow_nan=True).encode()
    how = draw(st.sampled_from(["whole", "cut", "byte"]))
    if how == "cut" and text:
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif how == "byte" and text:
        i = draw(st.integers(0, len(text) - 1))
        text = text[:i] + bytes([draw(st.integers(0, 255))]) + text[i + 1 :]
    return text


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def _ends_well(call: Callable[[], Any], root: Path) -> str:
    """Run *call*: 'ok', or 'error' when it raised what the CLI prints as one line."""
    before = _tree(root)
    try:
        call()
        outcome = "ok"
    except Exception as exc:
        found = error_line(exc)
        assert found is not None, f"{type(exc).__name__}: {exc}"  # noqa: PT017 (a traceback)
        assert found[1] in (2, 3, 4)
        outcome = "error"
    assert _tree(root) == before  # reading never changes a file
    return outcome


@FUZZ
@given(data=st.data())
def test_fuzz_plans(tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(_encode(data.draw, data.draw(mutated(PLAN))))
    _ends_well(lambda: AcquisitionPlan.from_file(path), tmp_path)


@FUZZ
@given(data=st.data())
def test_fuzz_profiles(tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "profile.json"
    path.write_bytes(_encode(data.draw, data.draw(mutated(PROFILE))))
    _ends_well(lambda: MicroscopeProfile.from_file(path), tmp_path)


@FUZZ
@given(data=st.data())
def test_fuzz_model_configs(tmp_path: Path, data: st.DataObject) -> None:
    (tmp_path / "config.json").write_bytes(_encode(data.draw, data.draw(mutated(MODEL))))
    _ends_well(lambda: load_config(tmp_path), tmp_path)


@pytest.fixture(scope="module")
def ome_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    meta = ImageMeta(
        pixel_size_um=0.185,
        z_step_um=0.4,
        planes=(PlaneMeta(x_um=1, y_um=2, z_um=0), PlaneMeta(x_um=1, y_um=2, z_um=0.4)),
        objective="40x",
        magnification=40,
        na=0.95,
        annotations={"field_id": "t"},
    )
    path = tmp_path_factory.mktemp("ome") / "t.ome.tif"
    return write_ome_tiff(path, np.zeros((2, 8, 8, 3), np.uint16), meta)


_ATTR = re.compile(r'(\w+)="([^"]*)"')


@FUZZ
@given(data=st.data())
def test_fuzz_ome_xml_headers(tmp_path: Path, ome_template: Path, data: st.DataObject) -> None:
    with tifffile.TiffFile(ome_template) as tf:
        xml = tf.pages[0].description
    attrs = list(_ATTR.finditer(xml))
    for _ in range(data.draw(st.integers(1, 4))):
        m = data.draw(st.sampled_from(attrs))
        new = data.draw(
            st.sampled_from(["0", "-1", "3", "100000", "1e309", "NaN", "", "x", "uint8", "int64"])
            | st.text(alphabet='<>&"0123456789abc', max_size=6)
        )
        xml = xml.replace(m.group(0), f'{m.group(1)}="{new}"', 1)
    if data.draw(st.booleans()):
        xml = xml[: data.draw(st.integers(0, len(xml)))]
    path = tmp_path / "f.ome.tif"
    path.write_bytes(ome_template.read_bytes())
    with tifffile.TiffFile(path, mode="r+b") as tf:
        tf.pages[0].tags["ImageDescription"].overwrite(xml.encode("utf-8"))
    _ends_well(lambda: read_ome_tiff(path), tmp_path)
