"""The USAF-1951 target: element geometry per the standard, and what each objective resolves."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from simulators import make_core, microscope_of, usaf_elements
from simulators.microscope import CameraModel


def test_elements_follow_the_standard():
    elements = usaf_elements()
    assert {e.group for e in elements} == {7, 8, 9, 10, 11}
    assert len(elements) == 30
    for e in elements:
        assert e.lp_per_mm == pytest.approx(2 ** (e.group + (e.element - 1) / 6))
        assert e.bar_width_um == pytest.approx(1000 / (2 * e.lp_per_mm))
        assert e.bar_length_um == pytest.approx(5 * e.bar_width_um)
    g7 = usaf_elements(groups=(7,))
    assert [e.element for e in g7] == [1, 2, 3, 4, 5, 6]


def bar_contrast(core, objective, element):
    """Michelson contrast across the vertical bars of *element* (noise-free frame)."""
    core.setConfig("Objective", objective)
    core.setROI(1024 - 192, 1024 - 192, 384, 384)
    core.setXYPosition(element.x_um, element.y_um)
    core.setPosition(microscope_of(core).objectives[objective].parfocal_z_um)  # in focus
    core.snapImage()
    img = core.getImage().astype(np.float32)[..., 1]
    inv = cv2.invertAffineTransform(microscope_of(core).snap_log[-1].affine())
    w = element.bar_width_um
    xs, ys = np.meshgrid(
        element.x_um + np.linspace(-2.5, 2.5, 101) * w,
        element.y_um + np.linspace(-1.5, 1.5, 15) * w,
    )
    cols = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    rows = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    profile = cv2.remap(img, cols.astype(np.float32), rows.astype(np.float32), cv2.INTER_LINEAR)
    profile = profile.mean(axis=0)
    return (profile.max() - profile.min()) / (profile.max() + profile.min())


@pytest.fixture(scope="module")
def usaf_core():
    core = make_core(specimen="usaf", seed=7)
    microscope_of(core).camera = CameraModel(noise=False)
    return core


def test_coarse_bars_resolved_by_both_fine_bars_only_at_100x(usaf_core):
    coarse = usaf_elements(groups=(8,))[0]
    assert bar_contrast(usaf_core, "40x", coarse) > 0.8
    assert bar_contrast(usaf_core, "100x", coarse) > 0.8
    for fine in (e for e in usaf_elements(groups=(10, 11)) if e.element == 1):
        assert bar_contrast(usaf_core, "100x", fine) > bar_contrast(usaf_core, "40x", fine) + 0.1
