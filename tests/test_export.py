"""``deepscope export``: ONNX, TorchScript and bioimage.io packages of a tiny model.

Each exported graph is run by its own runtime (onnxruntime, torch.jit, bioimageio.core) and
compared with ``deepscope enhance``'s engine on the same raw image; the package must pass
bioimageio.core's test. Bad input ends in one error line and leaves nothing behind.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from small_fs import read_only_dir, small_fs  # noqa: F401 (fixtures)

from app.cli import main
from model.config import ModelConfig, NetworkConfig, Normalisation
from model.export.bmz import collecting_open_files
from model.inference.engine import Enhancer
from model.network import DeepMicroscopyNet
from model.store import save_model

#: per-channel offsets and scales, so a channel mix-up or a missing step shows
NORM = Normalisation(
    input_offset=(100.0, 120.0, 140.0),
    input_scale=(4000.0, 3800.0, 3600.0),
    target_offset=(90.0, 110.0, 130.0),
    target_scale=(3900.0, 3700.0, 3500.0),
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    net = DeepMicroscopyNet(NetworkConfig(base_channels=4, num_blocks=1, alpha=2, global_skip=True))
    with torch.no_grad():  # the bicubic skip alone would hide a broken network path
        net.output_conv.weight.normal_(0.0, 0.05)
    config = ModelConfig(network=net.config, normalisation=NORM)
    return save_model(tmp_path_factory.mktemp("export") / "tiny", net, config)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A raw ``(y, x, 3)`` float32 image within the model's range."""
    rng = np.random.default_rng(seed)
    return rng.uniform(200.0, 3500.0, (h, w, 3)).astype(np.float32)


def _engine(model_dir: Path, image: np.ndarray) -> np.ndarray:
    """What ``deepscope enhance`` computes for *image*, as ``(1, c, Y, X)``."""
    out = Enhancer.from_dir(model_dir, device="cpu").enhance(image)
    return out.transpose(2, 0, 1)[None]


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    scale = np.asarray(NORM.target_scale).reshape(1, 3, 1, 1)
    return float((np.abs(got.astype(np.float64) - want) / scale).max())


def _export(
    capsys: pytest.CaptureFixture[str], model_dir: Path, fmt: str, out: Path, *extra: str
) -> dict[str, object]:
    code = main(["export", str(model_dir), "--format", fmt, "--out", str(out), "--json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    summary: dict[str, object] = json.loads(captured.out)
    return summary


def test_onnx_runs_in_onnxruntime_like_deepscope_enhance(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnxruntime as ort

    out = tmp_path / "tiny.onnx"
    summary = _export(capsys, model_dir, "onnx", out)
    assert summary["bytes"] == out.stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.onnx"]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for h, w in ((37, 29), (20, 52)):  # any height and width, raw intensities in and out
        image = _image(h, w)
        got = session.run(None, {"input": image.transpose(2, 0, 1)[None].copy()})[0]
        want = _engine(model_dir, image)
        assert got.shape == (1, 3, -(-5 * h // 2), -(-5 * w // 2))
        assert _relative(got, want) <= 1e-3
    batch = np.stack([_image(16, 16, seed=s).transpose(2, 0, 1) for s in (1, 2)])
    assert session.run(None, {"input": batch})[0].shape == (2, 3, 40, 40)


def test_torchscript_loads_with_torch_jit_like_deepscope_enhance(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tiny.pt"
    _export(capsys, model_dir, "torchscript", out)
    module = torch.jit.load(str(out))
    image = _image(33, 41)
    with torch.no_grad():
        got = module(torch.from_numpy(image.transpose(2, 0, 1)[None].copy())).numpy()
    want = _engine(model_dir, image)
    assert got.shape == want.shape == (1, 3, 83, 103)
    assert _relative(got, want) <= 1e-3


def test_bioimageio_package_passes_bioimageio_core_test(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bioimageio.core import test_model

    out = tmp_path / "tiny.zip"
    summary = _export(
        capsys, model_dir, "bioimageio", out, "--author", "A. Tester", "--license", "MIT"
    )
    assert summary["bioimageio_test"] == "passed"
    assert max(summary["max_difference"].values()) <= 1e-3  # type: ignore[attr-defined]
    with collecting_open_files():  # its own test, run again from the file
        assert test_model(out).status == "passed"

    with zipfile.ZipFile(out) as z:
        rdf = yaml.safe_load(z.read("rdf.yaml"))
        assert rdf["format_version"].startswith("0.5.")
        assert set(rdf["weights"]) == {"pytorch_state_dict", "torchscript", "onnx"}
        arch = rdf["weights"]["pytorch_state_dict"]["architecture"]
        assert (arch["import_from"], arch["callable"]) == ("model.network", "network_from_settings")
        assert rdf["authors"] == [{"name": "A. Tester"}]
        assert [p["id"] for p in rdf["inputs"][0]["preprocessing"]].count(
            "fixed_zero_mean_unit_variance"
        ) == 1
        assert rdf["outputs"][0]["postprocessing"][0]["kwargs"]["gain"] == list(NORM.target_scale)
        z.extract("test_input.npy", tmp_path)
        z.extract("test_output.npy", tmp_path)
        cover = cv2.imdecode(np.frombuffer(z.read("cover.png"), np.uint8), cv2.IMREAD_COLOR)
    x = np.load(tmp_path / "test_input.npy")
    y = np.load(tmp_path / "test_output.npy")
    # the test tensors are raw intensities and the output is what deepscope enhance gives
    assert x.shape[:2] == (1, 3)
    assert y.shape == (1, 3, 5 * x.shape[2] // 2, 5 * x.shape[3] // 2)
    assert _relative(y, _engine(model_dir, x[0].transpose(1, 2, 0))) <= 1e-3
    assert cover.shape == (y.shape[2], 2 * y.shape[3], 3)


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("deepscope: error: ")]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], code: int, *words: str) -> str:
    assert main(argv) == code
    line = _one_error_line(capsys.readouterr().err)
    for word in words:
        assert word in line, line
    return line


def test_bad_inputs_give_one_line_and_write_nothing(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    onnx = ["--format", "onnx", "--out", f"{out}/m.onnx"]
    package = ["export", str(model_dir), "--format", "bioimageio", "--out", f"{out}/m.zip"]
    _fails(capsys, ["export", str(empty), *onnx], 2, "config.json is missing")
    keras = ["export", str(model_dir), "--format", "keras", "--out", f"{out}/m"]
    _fails(capsys, keras, 2, "'keras' is unknown", "bioimageio, onnx, torchscript")
    _fails(capsys, [*package, "--name", "a/b"], 2, "not a bioimage.io model name")
    line = _fails(capsys, [*package, "--license", "NotALicense"], 2, "not an SPDX license id")
    assert len(line) < 200, line
    assert not out.exists()
    existing = tmp_path / "existing.onnx"
    existing.write_bytes(b"keep me")
    again = ["export", str(model_dir), "--format", "onnx", "--out", str(existing)]
    _fails(capsys, again, 2, str(existing), "never replaces")
    assert existing.read_bytes() == b"keep me"


def test_read_only_directory(
    model_dir: Path,
    read_only_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["export", str(model_dir), "--format", "torchscript", "--out", f"{read_only_dir}/m.pt"]
    line = _fails(capsys, argv, 4)
    assert "read-only" in line or "not writable" in line, line
    assert list(read_only_dir.iterdir()) == []


def test_full_disk_leaves_no_partial_file(
    model_dir: Path,
    small_fs,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = small_fs("24k")  # the ONNX graph of the tiny model is about 55 kB
    argv = ["export", str(model_dir), "--format", "onnx", "--out", f"{target}/m.onnx"]
    _fails(capsys, argv, 4, "disk full")
    assert list(target.iterdir()) == []


def test_missing_export_extra_is_named(
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an install without it sees
    argv = ["export", str(model_dir), "--format", "onnx", "--out", f"{tmp_path}/m.onnx"]
    _fails(capsys, argv, 2, "onnxruntime", "deepscope[export]")
    assert list(tmp_path.iterdir()) == []
