import numpy as np
import pytest

from deepscope.imaging import to_gray
from gui.display import auto_levels, downsample
from model.inference.view import ViewWindow, display_factor, display_window


@pytest.mark.parametrize(
    ("shape", "max_px", "factor"),
    [
        ((256, 256), 1024, 1),
        ((2048, 1024), 1024, 2),
        ((5120, 5120, 3), 1024, 5),
        ((1025, 10), 1024, 2),
    ],
)
def test_display_factor_brings_long_side_under_limit(shape, max_px, factor):
    f = display_factor(shape, max_px)
    assert f == factor
    assert max(shape[:2]) / f <= max_px


def test_downsample_averages_blocks_and_keeps_channels():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 4096, size=(64, 48, 3), dtype=np.uint16)
    out = downsample(img, 4)
    assert out.shape == (16, 12, 3)
    assert out.dtype == np.uint16
    expected = img.reshape(16, 4, 12, 4, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(out, expected, atol=1)
    one = downsample(img[..., :1], 2)
    assert one.shape == (32, 24, 1)
    assert downsample(img, 1) is img


def test_to_gray_weights_rgb():
    img = np.zeros((2, 2, 3), np.uint8)
    img[..., 1] = 100
    gray = to_gray(img)
    assert gray.shape == (2, 2)
    np.testing.assert_allclose(gray, 58.7, rtol=1e-5)
    mono = np.ones((3, 4, 1), np.float32)
    assert to_gray(mono).shape == (3, 4)


def test_auto_levels_ignore_outliers_and_never_empty():
    img = np.full((100, 100), 10.0, np.float32)
    img[:50] = 20.0
    img[0, 0] = 1e6
    lo, hi = auto_levels(img, 1, 99)
    assert lo == pytest.approx(10.0)
    assert hi == pytest.approx(20.0)
    lo, hi = auto_levels(np.zeros((8, 8), np.uint8))
    assert hi > lo


def test_display_window_crops_to_the_view_and_picks_screen_resolution():
    # whole 2048 frame in a 512 px view: everything, reduced 4x
    assert display_window(2048, 2048, None, 512) == ViewWindow(0, 2048, 0, 2048, 4)
    # zoomed in on 200x100 px: that part only, every pixel
    assert display_window(2048, 2048, (100.5, 50.2, 200.0, 100.0), 512) == ViewWindow(
        50, 151, 100, 301, 1
    )
    # a view larger than the frame is clamped to the frame
    assert display_window(96, 128, (-50, -20, 300, 200), 1024) == ViewWindow(0, 96, 0, 128, 1)
    # a view beside the frame falls back to the whole frame
    assert display_window(96, 128, (500, 500, 10, 10), 1024) == ViewWindow(0, 96, 0, 128, 1)
