"""Model config validation and the safetensors model store (no unpickling, ever)."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from deepscope.errors import InputError
from model.config import ModelConfig, NetworkConfig, Normalisation
from model.network import DeepMicroscopyNet
from model.store import CONFIG_NAME, WEIGHTS_NAME, load_config, load_model, save_model


def _small(**kw: object) -> NetworkConfig:
    return NetworkConfig(base_channels=4, num_blocks=2, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("scale", [2.7, 1.0, 9.0, 2.333])
def test_scale_rejected(scale: float) -> None:
    with pytest.raises(ValidationError, match="scale"):
        NetworkConfig(scale=scale)


def test_channels_rejected() -> None:
    with pytest.raises(ValidationError, match="channels=2"):
        NetworkConfig(channels=2)


def test_config_json_round_trip() -> None:
    cfg = ModelConfig(
        network=NetworkConfig(scale=2, channels=1),
        normalisation=Normalisation.identity(1, 4095),
        input_pixel_size_um=0.185,
        provenance={"pairs": "x"},
    )
    again = ModelConfig.model_validate_json(cfg.model_dump_json())
    assert again == cfg
    assert again.network.scale_fraction.denominator == 1


def test_unknown_config_key_rejected() -> None:
    data = json.loads(ModelConfig().model_dump_json())
    data["network"]["depth"] = 3
    with pytest.raises(ValidationError, match="depth"):
        ModelConfig.model_validate(data)


def test_round_trip_gives_same_outputs(tmp_path: Path) -> None:
    cfg = ModelConfig(network=_small())
    net = DeepMicroscopyNet(cfg.network).eval()
    save_model(tmp_path, net, cfg)
    loaded, cfg2 = load_model(tmp_path, expect_scale=2.5, expect_channels=3)
    assert cfg2 == cfg
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"expect_scale": 2.0}, "scale 2.5"), ({"expect_channels": 1}, "expects 3 channel")],
)
def test_refuses_model_for_other_data(tmp_path: Path, kw: dict[str, float], match: str) -> None:
    save_model(tmp_path, DeepMicroscopyNet(_small()), ModelConfig(network=_small()))
    with pytest.raises(InputError, match=match):
        load_model(tmp_path, **kw)  # type: ignore[arg-type]


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def test_pickle_named_safetensors_is_refused_not_run(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    save_model(model_dir, DeepMicroscopyNet(_small()), ModelConfig(network=_small()))
    marker = tmp_path / "pwned"
    (model_dir / WEIGHTS_NAME).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(InputError, match="not a valid safetensors"):
        load_model(model_dir)
    assert not marker.exists()
    torch.save(DeepMicroscopyNet(_small()).state_dict(), model_dir / WEIGHTS_NAME)
    with pytest.raises(InputError, match="not a valid safetensors"):
        load_model(model_dir)


def test_weights_not_matching_config_refused(tmp_path: Path) -> None:
    save_model(tmp_path, DeepMicroscopyNet(_small()), ModelConfig(network=_small()))
    other = ModelConfig(network=NetworkConfig(base_channels=6, num_blocks=2))
    (tmp_path / CONFIG_NAME).write_text(other.model_dump_json())
    with pytest.raises(InputError, match="do not match"):
        load_model(tmp_path)


def test_missing_and_broken_directories(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "nope")
    with pytest.raises(InputError, match=r"config\.json is missing"):
        load_config(tmp_path)
    (tmp_path / CONFIG_NAME).write_text("{not json")
    with pytest.raises(InputError, match="not a valid deepscope model config"):
        load_config(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(ModelConfig().model_dump_json())
    with pytest.raises(InputError, match=r"model\.safetensors is missing"):
        load_model(tmp_path)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (
            lambda s: s.__setitem__("input_conv.weight", s["input_conv.weight"] * float("nan")),
            "NaN",
        ),
        (lambda s: s.__setitem__("input_conv.bias", s["input_conv.bias"].to(torch.int32)), "int32"),
        (lambda s: s.__setitem__("input_conv.bias", s["input_conv.bias"][:1]), "has shape (1,)"),
        (lambda s: s.pop("output_conv.weight"), "output_conv.weight is missing"),
    ],
)
def test_degenerate_weights_are_refused_naming_the_tensor(
    tmp_path: Path, change: Any, needle: str
) -> None:
    from safetensors.torch import load_file, save_file

    net = DeepMicroscopyNet(NetworkConfig(base_channels=4, num_blocks=1, alpha=2))
    d = save_model(
        tmp_path / "m",
        net,
        ModelConfig(network=net.config, normalisation=Normalisation.identity(3)),
    )
    state = load_file(str(d / "model.safetensors"))
    change(state)
    save_file(state, str(d / "model.safetensors"))
    with pytest.raises(InputError, match=re.escape(needle)):
        load_model(d)


def test_a_zero_input_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="scales must be positive"):
        Normalisation(
            input_offset=(0.0,), input_scale=(0.0,), target_offset=(0.0,), target_scale=(1.0,)
        )
