from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cli import main
from deepscope.ometiff import ImageMeta, PlaneMeta, read_ome_tiff, write_ome_tiff
from model.config import ModelConfig, NetworkConfig, Normalisation
from model.inference.cost import frame_cost
from model.network import DeepMicroscopyNet
from model.store import save_model


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    net = DeepMicroscopyNet(NetworkConfig(base_channels=4, num_blocks=1, alpha=2))
    config = ModelConfig(network=net.config, normalisation=Normalisation.identity(3, 255.0))
    return save_model(tmp_path / "model", net, config)


def test_enhance_cli_writes_ome_tiff_with_scaled_pixels(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 255, (2, 30, 44, 3), dtype=np.uint8)
    planes = (PlaneMeta(x_um=10.0, y_um=20.0, z_um=1.0), PlaneMeta(x_um=10.0, y_um=20.0, z_um=1.4))
    src = write_ome_tiff(
        tmp_path / "field.ome.tif",
        stack,
        ImageMeta(pixel_size_um=0.185, planes=planes, objective="40x", z_step_um=0.4),
    )
    code = main(
        [
            "enhance",
            str(model_dir),
            str(src),
            "-o",
            str(tmp_path / "out"),
            "--json",
            "--tile",
            "32",
            "--overlap",
            "14",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    out_path = Path(summary["files"][0]["output"])
    data, meta = read_ome_tiff(out_path)
    assert data.shape == (2, 75, 110, 3)
    assert data.dtype == np.uint8
    assert meta.pixel_size_um == pytest.approx(0.185 / 2.5)
    assert meta.planes[1].z_um == pytest.approx(1.4)
    assert meta.objective is None  # no physical 40x objective imaged at 0.074 um
    assert meta.annotations["source_objective"] == "40x"
    assert meta.annotations["enhance_scale"] == "2.5"


def test_enhance_cli_reports_bad_input(tmp_path: Path, model_dir: Path) -> None:
    assert main(["enhance", str(model_dir), str(tmp_path / "nope.tif"), "-o", str(tmp_path)]) == 2
    src = write_ome_tiff(
        tmp_path / "mono.ome.tif", np.zeros((20, 20), np.uint16), ImageMeta(pixel_size_um=0.2)
    )
    assert main(["enhance", str(model_dir), str(src), "-o", str(tmp_path / "o.ome.tif")]) == 2


def test_frame_cost_counts_conv_flops() -> None:
    net = DeepMicroscopyNet(NetworkConfig(base_channels=4, num_blocks=1, alpha=2))
    h, w = 16, 20
    expect = 0
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            oh, ow = (h, w) if m is not net.down else net.output_size(h, w)
            inh = m.in_channels
            expect += 2 * inh * m.out_channels * 9 * oh * ow
    cost = frame_cost(net, h, w)
    assert cost.flops == expect
    assert frame_cost(net, 2 * h, 2 * w).flops == pytest.approx(4 * expect, rel=0.01)
    assert cost.layer_bytes > cost.min_bytes > 0
    assert cost.as_dict()["h100_floor_ms_layerwise"] > 0
    assert next(net.parameters()).device.type == "cpu"  # the net itself is untouched


def test_output_paths_name_one_file_or_a_directory(tmp_path: Path) -> None:
    from deepscope.errors import InputError
    from model.inference.cli import output_paths

    one = output_paths([tmp_path / "a.ome.tif"], tmp_path / "x.ome.tif")
    assert one == [tmp_path / "x.ome.tif"]
    many = output_paths([tmp_path / "a.ome.tif", tmp_path / "b.ome.tif"], tmp_path / "out")
    assert many == [
        tmp_path / "out" / "a_enhanced.ome.tif",
        tmp_path / "out" / "b_enhanced.ome.tif",
    ]
    with pytest.raises(InputError, match="share a name"):
        output_paths([tmp_path / "a.ome.tif", tmp_path / "d" / "a.ome.tif"], tmp_path / "out")


def test_enhance_cli_refuses_inputs_of_another_pixel_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(1)
    net = DeepMicroscopyNet(NetworkConfig(base_channels=4, num_blocks=1, alpha=2))
    config = ModelConfig(network=net.config, input_pixel_size_um=0.185)
    model = save_model(tmp_path / "model40", net, config)
    image = np.zeros((1, 20, 24, 3), np.uint8)
    ok = write_ome_tiff(tmp_path / "a40.ome.tif", image, ImageMeta(pixel_size_um=0.1852))
    bad = write_ome_tiff(tmp_path / "b100.ome.tif", image, ImageMeta(pixel_size_um=0.074))
    out = tmp_path / "out"
    assert main(["enhance", str(model), str(ok), str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "b100.ome.tif" in err[0]
    assert "0.074" in err[0]
    assert "--force" in err[0]
    assert not out.exists()  # not even the matching input was written
    assert main(["enhance", str(model), str(ok), str(bad), "-o", str(out), "--force"]) == 0
    assert len(list(out.glob("*.ome.tif"))) == 2


def test_enhance_never_replaces_raw_data(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    raw = write_ome_tiff(
        tmp_path / "raw.ome.tif",
        rng.integers(0, 255, (24, 24, 3), dtype=np.uint8),
        ImageMeta(pixel_size_um=0.185),
    )
    ds = tmp_path / "ds"
    (ds / "fields").mkdir(parents=True)
    (ds / "dataset.json").write_text("{}")
    in_ds = write_ome_tiff(
        ds / "fields" / "tile.ome.tif",
        np.zeros((24, 24, 3), np.uint8),
        ImageMeta(pixel_size_um=0.185),
    )
    before = {p: p.read_bytes() for p in (raw, in_ds)}
    cases = [
        ([str(raw), "-o", str(raw)], "also an input"),
        ([str(raw), "-o", str(tmp_path / "." / "raw.ome.tif")], "also an input"),
        ([str(in_ds), "-o", str(in_ds)], "also an input"),
        ([str(raw), "-o", str(ds / "fields" / "x.ome.tif")], "holds acquired"),
        ([str(raw), str(in_ds), "-o", str(ds / "fields")], "holds acquired"),
        ([str(raw), str(in_ds), "-o", str(raw)], "existing file"),
    ]
    for argv, needle in cases:
        assert main(["enhance", str(model_dir), *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("deepscope: error:"), err
        assert needle in err
        assert "\n" not in err
    assert {p: p.read_bytes() for p in (raw, in_ds)} == before
    assert sorted(p.name for p in (ds / "fields").iterdir()) == ["tile.ome.tif"]


def test_enhance_removes_partials_of_a_killed_run(tmp_path: Path, model_dir: Path) -> None:
    import subprocess
    import sys

    src = write_ome_tiff(
        tmp_path / "a.ome.tif", np.zeros((16, 16, 3), np.uint8), ImageMeta(pixel_size_um=0.2)
    )
    out = tmp_path / "out"
    out.mkdir()
    pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    torn = out / f".a_enhanced.ome.tif.{pid}.partial"
    torn.write_bytes(b"torn")
    assert main(["enhance", str(model_dir), str(src), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_enhanced.ome.tif"]
