"""Oversized and malformed inputs are refused in one line before anything is allocated."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from test_acq_run import small_plan

from acquire.runner import run_acquisition
from app.cli import main
from deepscope.errors import InputError
from deepscope.ometiff import ImageMeta, read_ome_tiff, write_ome_tiff
from model.config import NetworkConfig
from simulators import make_core, microscope_of


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _claim_size(path: Path, width: int, height: int) -> None:
    """Rewrite a TIFF's header (tags and OME-XML) to claim *width* x *height* pixels."""
    with tifffile.TiffFile(path, mode="r+b") as tf:
        page = tf.pages[0]
        xml = page.description
        page.tags["ImageWidth"].overwrite(width)
        page.tags["ImageLength"].overwrite(height)
        page.tags["ImageDescription"].overwrite(
            xml.replace('SizeX="16"', f'SizeX="{width}"').replace('SizeY="16"', f'SizeY="{height}"')
        )


def test_a_header_claiming_60000_px_is_refused_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_ome_tiff(
        tmp_path / "huge.ome.tif", np.zeros((16, 16, 3), np.uint16), ImageMeta(pixel_size_um=0.2)
    )
    _claim_size(path, 60000, 60000)
    rss, t0 = _rss_mb(), time.monotonic()
    with pytest.raises(InputError, match=r"over the limit of 4,096 MB.*DEEPSCOPE_MAX_IMAGE_MB"):
        read_ome_tiff(path)
    assert time.monotonic() - t0 < 2
    assert _rss_mb() - rss < 100


def test_ome_xml_that_disagrees_with_the_pixels_or_has_no_image(tmp_path: Path) -> None:
    path = write_ome_tiff(
        tmp_path / "a.ome.tif", np.zeros((16, 16, 3), np.uint16), ImageMeta(pixel_size_um=0.2)
    )
    with tifffile.TiffFile(path, mode="r+b") as tf:
        xml = tf.pages[0].description
        tf.pages[0].tags["ImageDescription"].overwrite(xml.replace('SizeX="16"', 'SizeX="17"'))
    with pytest.raises(InputError, match=r"OME-XML says 1x16x17x3 .* shape \(16, 16, 3\)"):
        read_ome_tiff(path)
    ns = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
    with tifffile.TiffFile(path, mode="r+b") as tf:
        tf.pages[0].tags["ImageDescription"].overwrite(
            f'<?xml version="1.0"?><OME xmlns="{ns}"></OME>'
        )
    with pytest.raises(InputError, match="no <Image>"):
        read_ome_tiff(path)


def test_a_plan_of_millions_of_tiles_is_refused_before_building_them(tmp_path: Path) -> None:
    region = {"x_um": -45_000.0, "y_um": -30_000.0, "width_um": 90_000.0, "height_um": 60_000.0}
    core = make_core(seed=0)
    t0 = time.monotonic()
    with pytest.raises(
        InputError, match=r"tiles: 13,331,032 fields is over the limit .*DEEPSCOPE_MAX_FIELDS"
    ):
        run_acquisition(small_plan(region=region), tmp_path / "ds", core)
    assert time.monotonic() - t0 < 5
    assert microscope_of(core).snap_log == []
    assert not (tmp_path / "ds").exists()


def test_model_size_guard_and_how_to_raise_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="DEEPSCOPE_MAX_MODEL_PARAMS"):
        NetworkConfig(num_blocks=10_000_000)
    monkeypatch.setenv("DEEPSCOPE_MAX_MODEL_PARAMS", "10")
    with pytest.raises(ValueError, match="over the limit of 10 parameters"):
        NetworkConfig()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"name: x\nregion: \xff\xfe\n", "not UTF-8 text"),
        (
            b"name: x\nregion: {x_um: 0, y_um: 0, width_um: .inf, height_um: 10}\n"
            b"tiles: {exposure_ms: 5}\ntargets: {count: 1}\n",
            "region.width_um",
        ),
        (
            b"a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
            b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
            b"name: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
            "name",
        ),
    ],
)
def test_bad_plan_files_give_one_short_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, needle: str
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_bytes(content)
    assert main(["acquire", str(plan), "--out", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("deepscope: error: "), err[:2000]
    assert "\n" not in err
    assert needle in err
    assert len(err) < 400
    assert not (tmp_path / "ds").exists()


def test_a_model_config_with_ten_million_blocks_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"network": {"num_blocks": 10_000_000}}))
    (model / "model.safetensors").write_bytes(b"")
    src = write_ome_tiff(
        tmp_path / "in.ome.tif", np.zeros((8, 8, 3), np.uint8), ImageMeta(pixel_size_um=1)
    )
    assert main(["enhance", str(model), str(src), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "DEEPSCOPE_MAX_MODEL_PARAMS" in err
    assert "\n" not in err


def test_an_unknown_training_device_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dlm_pairs import write_pairs

    pairs = write_pairs(tmp_path / "pairs", n_train=1, n_val=1, n_test=1, lr_size=24)
    assert main(["train", str(pairs), "--out", str(tmp_path / "m"), "--device", "tpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "device" in err
    assert "'tpu'" in err
    assert "\n" not in err
    assert not (tmp_path / "m").exists()


def test_a_damaged_or_misfitting_checkpoint_is_one_line(tmp_path: Path) -> None:
    import threading

    import torch
    from dlm_pairs import write_pairs
    from safetensors import safe_open
    from safetensors.torch import save_file

    from model.training.checkpoint import CHECKPOINT_NAME
    from model.training.config import TrainConfig
    from model.training.train import train_model

    pairs = write_pairs(tmp_path / "pairs", n_train=2, n_val=1, n_test=1, lr_size=24)
    cfg = TrainConfig(
        batch_size=4, patch_size=24, base_channels=4, num_blocks=1, steps=6, val_every=3
    )
    cancel = threading.Event()
    train_model(pairs, tmp_path / "m", cfg, progress=lambda m: cancel.set(), cancel=cancel)
    ckpt = tmp_path / "m" / CHECKPOINT_NAME
    with safe_open(str(ckpt), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    name = next(k for k in tensors if k.startswith("model.") and k.endswith("weight"))
    wrong = {**tensors, name: torch.zeros(2, *tensors[name].shape[1:])}
    save_file(wrong, str(ckpt), metadata=meta)
    with pytest.raises(InputError, match=r"checkpoint does not fit this network .*--no-resume"):
        train_model(pairs, tmp_path / "m", cfg)
    save_file(tensors, str(ckpt), metadata={"deepscope": "{not json"})
    with pytest.raises(InputError, match="damaged checkpoint header"):
        train_model(pairs, tmp_path / "m", cfg)
