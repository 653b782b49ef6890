from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from deepscope.errors import InputError
from gui.display import downsample
from model.config import ModelConfig, NetworkConfig, Normalisation
from model.inference.engine import MAX_SHAPES, Enhancer, pixel_size_mismatch
from model.inference.tiling import min_overlap, plan_tiles
from model.inference.view import ViewRequest, ViewWindow
from model.network import DeepMicroscopyNet
from model.store import save_model

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def tiny_net(channels: int = 3, seed: int = 0, global_skip: bool = False) -> DeepMicroscopyNet:
    torch.manual_seed(seed)
    return DeepMicroscopyNet(  # the paper network (no global skip) unless asked
        NetworkConfig(
            channels=channels, base_channels=4, num_blocks=1, alpha=2, global_skip=global_skip
        )
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
@pytest.mark.parametrize("global_skip", [False, True])
def test_tiled_equals_untiled(tile: int, overlap: int, global_skip: bool) -> None:
    net = tiny_net(global_skip=global_skip)
    with torch.no_grad():  # the global skip's output convolution starts at zero: make it count
        net.output_conv.weight.normal_(0, 0.1)
    config = ModelConfig(network=net.config)
    img = specimen(97, 131)
    whole = Enhancer(net, config, device="cpu", tile=1024).enhance(img)
    tiled_enh = Enhancer(net, config, device="cpu", tile=tile, overlap=overlap)
    assert len(plan_tiles(97, 131, tiled_enh.tile_for(97, 131), tiled_enh.overlap, net)) > 4
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
        np.testing.assert_allclose(collect().full, gpu.enhance(frame), atol=1e-5)


@pytest.mark.parametrize("tile", [1024, 40])
def test_view_is_the_area_reduced_part_of_the_full_frame(
    net: DeepMicroscopyNet, config: ModelConfig, tile: int
) -> None:
    enh = Enhancer(net, config, device="cpu", tile=tile, overlap=14)
    img = specimen(60, 80)
    full = enh.enhance(img)
    # zoomed on raw pixels x 10..50, y 4..34 shown on 40 screen px: 2.5x -> 100x75 out px, /3
    got = enh.enhance_async(img, full=False, view=ViewRequest(10, 4, 40, 30, 40))()
    assert got.full is None
    assert got.window == ViewWindow(10, 85, 25, 125, 3)
    assert got.view is not None
    w = got.window
    expect = downsample(full[w.y0 : w.y1, w.x0 : w.x1], w.factor)
    assert got.view.shape == (*w.shape, 3) == expect.shape
    np.testing.assert_allclose(got.view, expect, rtol=0, atol=1e-4)
    # the whole frame in a 64 px view
    whole = enh.enhance_async(img, view=ViewRequest(0, 0, 80, 60, 64))()
    assert whole.window == ViewWindow(0, 150, 0, 200, 4)
    assert whole.full is not None
    np.testing.assert_allclose(whole.full, full, atol=1e-6)


def test_integer_output_is_rounded_and_clipped_on_the_device(
    net: DeepMicroscopyNet, config: ModelConfig
) -> None:
    enh = Enhancer(net, config, device="cpu")
    img = specimen(30, 40) * 300 - 20  # some outputs below zero
    ref = enh.enhance(img)
    out = enh.enhance(img, dtype=np.uint8)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.clip(np.rint(ref), 0, 255).astype(np.uint8))
    with pytest.raises(InputError, match="output dtype"):
        enh.enhance(img, dtype=np.int64)


def test_frame_shape_changes_rebuild_the_buffers(
    net: DeepMicroscopyNet, config: ModelConfig
) -> None:
    enh = Enhancer(net, config, device="cpu", tile=40, overlap=14)
    shapes = [(30, 40), (57, 71), (96, 64), (30, 40)]
    for h, w in shapes:
        img = specimen(h, w, seed=h)
        ref = Enhancer(net, config, device="cpu", tile=1024).enhance(img)
        np.testing.assert_allclose(enh.enhance(img), ref, atol=1e-4)
        assert len(enh._plans) <= MAX_SHAPES


def test_results_in_flight_do_not_share_memory(net: DeepMicroscopyNet, config: ModelConfig) -> None:
    enh = Enhancer(net, config, device="cpu")
    frames = [specimen(30, 40, seed=s) for s in range(3)]
    outs = [enh.enhance_async(f)().full for f in frames]
    for frame, out in zip(frames, outs, strict=True):
        np.testing.assert_array_equal(out, enh.enhance(frame))


def test_out_of_memory_falls_back_to_smaller_tiles(
    net: DeepMicroscopyNet, config: ModelConfig, caplog: pytest.LogCaptureFixture
) -> None:
    img = specimen(97, 131)
    ref = Enhancer(net, config, device="cpu", tile=1024).enhance(img)
    enh = Enhancer(net, config, device="cpu")
    real_forward = enh.net.forward
    seen: list[tuple[int, int]] = []

    def limited(x: torch.Tensor) -> torch.Tensor:  # a device with room for 64x64 tiles
        seen.append((x.shape[-2], x.shape[-1]))
        if x.shape[-2] * x.shape[-1] > 64 * 64:
            raise torch.OutOfMemoryError("CUDA out of memory (test device)")
        return real_forward(x)

    enh.net.forward = limited  # type: ignore[method-assign]
    with caplog.at_level("WARNING", logger="deepscope.inference"):
        out = enh.enhance(img)
    assert np.abs(out - ref).max() <= 1e-4
    assert enh.tile_for(97, 131) <= 64
    assert max(h * w for h, w in seen[-4:]) <= 64 * 64
    warnings = [r for r in caplog.records if "out of device memory" in r.getMessage()]
    assert 1 <= len(warnings) <= 4  # one line per halving
    caplog.clear()
    enh.enhance(img)  # the smaller tile is kept: no more warnings
    assert not caplog.records


def test_pixel_size_mismatch_beyond_two_percent() -> None:
    config = ModelConfig(input_pixel_size_um=0.185)
    assert pixel_size_mismatch(config, 0.185) is None
    assert pixel_size_mismatch(config, 0.185 * 1.019) is None
    message = pixel_size_mismatch(config, 0.074)
    assert message is not None
    assert "0.074" in message
    assert "0.185" in message
    assert pixel_size_mismatch(ModelConfig(), 0.074) is None  # the model does not say
    assert pixel_size_mismatch(config, 0.0) is None  # the camera does not say


@CUDA
def test_cuda_whole_frame_and_view_match_the_cpu(
    net: DeepMicroscopyNet, config: ModelConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    img = np.rint(specimen(150, 170) * 4000).astype(np.uint16)
    view = ViewRequest(20, 10, 100, 90, 64)
    cpu = Enhancer(net, config, device="cpu", precision="fp32")
    gpu = Enhancer(net, config, device="cuda", precision="fp32")
    assert gpu.tile_for(150, 170) >= 170  # small frames run whole
    ref = cpu.enhance_async(img, view=view, dtype=np.uint16)()
    got = gpu.enhance_async(img, view=view, dtype=np.uint16)()
    assert got.window == ref.window
    assert ref.full is not None
    assert got.full is not None
    assert ref.view is not None
    assert got.view is not None
    assert np.abs(got.full.astype(int) - ref.full).max() <= 1
    assert np.abs(got.view.astype(int) - ref.view).max() <= 1


@CUDA
def test_cuda_caller_may_reuse_its_frame_at_once(
    net: DeepMicroscopyNet, config: ModelConfig
) -> None:
    gpu = Enhancer(net, config, device="cuda", precision="fp32")
    a, b = specimen(200, 220, seed=1), specimen(200, 220, seed=2)
    expect = gpu.enhance(a.copy())
    buf = a.copy()
    collect = gpu.enhance_async(buf)
    buf[...] = b  # the camera overwrites its buffer while the frame is in flight
    got = collect().full
    assert got is not None
    np.testing.assert_allclose(got, expect, atol=1e-5)


@CUDA
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_cuda_shape_change_rebuilds_buffers_and_graphs(
    net: DeepMicroscopyNet, config: ModelConfig, cuda_graphs: bool
) -> None:
    gpu = Enhancer(net, config, device="cuda", precision="bf16", cuda_graphs=cuda_graphs)
    cpu = Enhancer(net, config, device="cpu", precision="fp32")
    for h, w in [(128, 128), (96, 160), (200, 120), (128, 128)]:
        img = specimen(h, w, seed=h)
        ref = cpu.enhance(img)
        for _ in range(2):
            out = gpu.enhance(img)
            assert np.linalg.norm(out - ref) / np.linalg.norm(ref) <= 1e-2
        assert len(gpu._plans) <= MAX_SHAPES


@CUDA
def test_cuda_out_of_memory_falls_back_to_tiles(caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    net = DeepMicroscopyNet(NetworkConfig())  # the paper's widths: ~2 GB for a 1536^2 fp32 frame
    config = ModelConfig(network=net.config)
    img = specimen(1536, 1536)
    gpu = Enhancer(net, config, device="cuda", precision="fp32")
    torch.cuda.empty_cache()
    fraction = 2**30 / torch.cuda.get_device_properties(gpu.device).total_memory
    torch.cuda.set_per_process_memory_fraction(fraction, gpu.device)  # a 1 GiB device
    try:
        with caplog.at_level("WARNING", logger="deepscope.inference"):
            out = gpu.enhance(img)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, gpu.device)
    assert gpu.tile_for(1536, 1536) < 1536
    assert any("out of device memory" in r.getMessage() for r in caplog.records)
    ref = Enhancer(net, config, device="cpu").enhance(img[600:760, 600:760])
    inner = out[1500:1900, 1500:1900][100:300, 100:300]
    np.testing.assert_allclose(inner, ref[100:300, 100:300], atol=1e-3)
