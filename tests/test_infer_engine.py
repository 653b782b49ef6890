from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from deepscope.errors import InputError
from model.config import ModelConfig, NetworkConfig, Normalisation
from model.inference.engine import Enhancer
from model.inference.tiling import min_overlap, plan_tiles
from model.network import DeepMicroscopyNet
from model.store import save_model

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def tiny_net(channels: int = 3, seed: int = 0) -> DeepMicroscopyNet:
    torch.manual_seed(seed)
    return DeepMicroscopyNet(
        NetworkConfig(channels=channels, base_channels=4, num_blocks=1, alpha=2)
    )


def specimen(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth random structure, like stained tissue, in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, c), np.float32)
    for _ in range(40):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        s = rng.uniform(2, 8)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        img += blob[..., None] * rng.uniform(0.2, 1.0, c).astype(np.float32)
    img /= img.max()
    return img + 0.02 * rng.standard_normal(img.shape).astype(np.float32)


@pytest.fixture
def net() -> DeepMicroscopyNet:
    return tiny_net()


@pytest.fixture
def config(net: DeepMicroscopyNet) -> ModelConfig:
    return ModelConfig(network=net.config)


def test_output_shape_matches_network(net: DeepMicroscopyNet, config: ModelConfig) -> None:
    enh = Enhancer(net, config, device="cpu")
    out = enh.enhance(specimen(37, 50))
    assert out.shape == (*net.output_size(37, 50), 3)
    assert out.dtype == np.float32
    assert enh.scale == 2.5
    assert enh.device == torch.device("cpu")
    weight = net.input_conv.weight
    assert weight.is_contiguous()  # the caller's network is left as it was
    assert not weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float64])
def test_any_numeric_dtype_gives_the_float32_result(
    net: DeepMicroscopyNet, config: ModelConfig, dtype: type
) -> None:
    raw = np.rint(specimen(21, 30) * 200).astype(dtype)
    enh = Enhancer(net, config, device="cpu")
    np.testing.assert_allclose(
        enh.enhance(raw), enh.enhance(raw.astype(np.float32)), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize(
    ("tile", "overlap"),
    [(40, 14), (41, 15), (33, 17), (30, 20), (64, 20)],
)
def test_tiled_equals_untiled(
    net: DeepMicroscopyNet, config: ModelConfig, tile: int, overlap: int
) -> None:
    img = specimen(97, 131)
    whole = Enhancer(net, config, device="cpu", tile=1024).enhance(img)
    tiled_enh = Enhancer(net, config, device="cpu", tile=tile, overlap=overlap)
    assert len(plan_tiles(97, 131, tiled_enh.tile, tiled_enh.overlap, net)) > 4
    tiled = tiled_enh.enhance(img)
    assert np.abs(tiled - whole).max() <= 1e-4


def test_tile_weights_are_a_partition_of_unity(net: DeepMicroscopyNet) -> None:
    tiles = plan_tiles(97, 131, 33, 17, net)
    oh, ow = net.output_size(97, 131)
    total = np.zeros((oh, ow))
    for t in tiles:
        assert t.y.start % 2 == 0
        assert t.x.start % 2 == 0
        total[t.y.out_start : t.y.out_stop, t.x.out_start : t.x.out_stop] += t.weight()
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_overlap_below_the_halo_is_refused(net: DeepMicroscopyNet, config: ModelConfig) -> None:
    with pytest.raises(InputError, match="overlap"):
        Enhancer(net, config, device="cpu", tile=64, overlap=min_overlap(net) - 2)
    with pytest.raises(InputError, match="multiple of 2"):
        Enhancer(net, config, device="cpu", tile=65, overlap=min_overlap(net))


def test_wrong_channels_and_bad_settings_raise(net: DeepMicroscopyNet, config: ModelConfig) -> None:
    enh = Enhancer(net, config, device="cpu")
    with pytest.raises(InputError, match=r"\(y, x, 3\)"):
        enh.enhance(np.zeros((20, 20), np.float32))
    with pytest.raises(InputError, match="precision"):
        Enhancer(net, config, device="cpu", precision="int4")
    with pytest.raises(InputError, match="fp16"):
        Enhancer(net, config, device="cpu", precision="fp16")
    with pytest.raises(InputError, match="device"):
        Enhancer(net, config, device="tpu")


def test_normalisation_is_applied_and_inverted() -> None:
    net = tiny_net()
    norm = Normalisation(
        input_offset=(100.0, 50.0, 0.0),
        input_scale=(4000.0, 2000.0, 1000.0),
        target_offset=(10.0, 20.0, 30.0),
        target_scale=(3000.0, 3000.0, 500.0),
    )
    config = ModelConfig(network=net.config, normalisation=norm)
    raw = np.rint(specimen(24, 30) * 3000 + 100).astype(np.uint16)
    out = Enhancer(net, config, device="cpu").enhance(raw)
    x = (raw - np.array(norm.input_offset)) / np.array(norm.input_scale)
    with torch.no_grad():
        y = net(torch.from_numpy(x.astype(np.float32)).permute(2, 0, 1)[None])[0]
    expect = y.permute(1, 2, 0).numpy() * np.array(norm.target_scale) + np.array(norm.target_offset)
    np.testing.assert_allclose(out, expect, rtol=1e-4, atol=1e-2)


def test_mono_model_accepts_2d_frames() -> None:
    net = tiny_net(channels=1)
    config = ModelConfig(network=net.config, normalisation=Normalisation.identity(1))
    out = Enhancer(net, config, device="cpu").enhance(specimen(20, 26, c=1)[..., 0])
    assert out.shape == (50, 65, 1)


def test_self_feed_runs_the_network_twice(net: DeepMicroscopyNet, config: ModelConfig) -> None:
    enh = Enhancer(net, config, device="cpu")
    img = specimen(30, 40)
    once = enh.enhance(img)
    twice = enh.enhance(img, self_feed=True)
    assert twice.shape == once.shape
    back = (
        torch.nn.functional.interpolate(
            torch.from_numpy(once).permute(2, 0, 1)[None],
            size=(30, 40),
            mode="bilinear",
            antialias=True,
        )[0]
        .permute(1, 2, 0)
        .numpy()
    )
    np.testing.assert_allclose(twice, enh.enhance(back), atol=1e-6)
    assert np.abs(twice - once).max() > 1e-3


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    rng = float(b.max() - b.min())
    return float(structural_similarity(a, b, channel_axis=-1, data_range=rng))


def test_bf16_channels_last_cpu_matches_fp32(net: DeepMicroscopyNet, config: ModelConfig) -> None:
    img = specimen(64, 80)
    ref = Enhancer(net, config, device="cpu", precision="fp32").enhance(img)
    opt = Enhancer(net, config, device="cpu", precision="bf16", tile=40, overlap=14).enhance(img)
    rel = np.linalg.norm(opt - ref) / np.linalg.norm(ref)
    assert rel <= 1e-2
    assert _ssim(opt, ref) >= 1 - 1e-3


def test_from_dir_loads_a_saved_model(
    tmp_path: Path, net: DeepMicroscopyNet, config: ModelConfig
) -> None:
    save_model(tmp_path / "m", net, config)
    img = specimen(20, 24)
    loaded = Enhancer.from_dir(tmp_path / "m", device="cpu", tile=64)
    np.testing.assert_allclose(
        loaded.enhance(img), Enhancer(net, config, device="cpu").enhance(img), atol=1e-6
    )
    with pytest.raises(InputError, match="does not exist"):
        Enhancer.from_dir(tmp_path / "missing")


@CUDA
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_cuda_optimized_matches_fp32(
    net: DeepMicroscopyNet, config: ModelConfig, precision: str, cuda_graphs: bool
) -> None:
    img = specimen(200, 260)
    ref = Enhancer(net, config, device="cpu", precision="fp32").enhance(img)
    gpu = Enhancer(
        net, config, device="cuda", precision=precision, tile=96, cuda_graphs=cuda_graphs
    )
    for _ in range(2):  # second call replays the captured graphs
        out = gpu.enhance(img)
        assert np.linalg.norm(out - ref) / np.linalg.norm(ref) <= 1e-2
        assert _ssim(out, ref) >= 1 - 1e-3


@CUDA
def test_cuda_fp32_tiled_equals_cpu(
    net: DeepMicroscopyNet, config: ModelConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    img = specimen(150, 170)
    ref = Enhancer(net, config, device="cpu", precision="fp32").enhance(img)
    out = Enhancer(net, config, device="cuda", precision="fp32", tile=64).enhance(img)
    assert np.abs(out - ref).max() <= 1e-4


@CUDA
@pytest.mark.parametrize("tile", [96, 1024])
def test_cuda_enhance_async_overlapping_frames_match(
    net: DeepMicroscopyNet, config: ModelConfig, tile: int
) -> None:
    gpu = Enhancer(net, config, device="cuda", precision="fp32", tile=tile)
    assert gpu.overlaps
    frames = [specimen(150, 170, seed=s) for s in range(3)]
    collectors = [gpu.enhance_async(f) for f in frames]  # all queued before any is collected
    for frame, collect in zip(frames, collectors, strict=True):
        np.testing.assert_allclose(collect(), gpu.enhance(frame), atol=1e-5)
