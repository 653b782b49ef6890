"""Optics, geometry and ground truth of the simulated microscope."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from deepscope.errors import HardwareError
from simulators import FaultConfig, make_core, microscope_of, pixel_to_slide
from simulators.microscope import CameraModel
from simulators.optics import OBJECTIVES, psf_kernel
from simulators.specimen import TissueSpecimen


def snap(core, objective, n, x=0.0, y=0.0, z=0.0):
    """A centred n x n frame at (x, y, z) through *objective*, as float."""
    core.setConfig("Objective", objective)
    core.setROI((2048 - n) // 2, (2048 - n) // 2, n, n)
    core.setXYPosition(x, y)
    core.setPosition(z)
    core.snapImage()
    return core.getImage().astype(np.float64)


def band_power(img, pixel_um, lo, hi):
    """Mean power spectral density of *img* between lo and hi cycles/um (Hann window)."""
    g = img - img.mean()
    g = g * np.hanning(g.shape[0])[:, None] * np.hanning(g.shape[1])[None]
    p = np.abs(np.fft.fft2(g)) ** 2
    fy, fx = np.fft.fftfreq(g.shape[0], pixel_um), np.fft.fftfreq(g.shape[1], pixel_um)
    r = np.hypot(fy[:, None], fx[None])
    return p[(r >= lo) & (r < hi)].mean()


def noise_free(core):
    microscope_of(core).camera = CameraModel(noise=False)
    return core


def otf_at(objective, f_cyc_um):
    k = psf_kernel(OBJECTIVES[objective], 0.55, 0.04, 0.0)
    pad = np.zeros((512, 512))
    pad[: k.shape[0], : k.shape[1]] = k
    otf = np.abs(np.fft.fft2(pad))
    f = np.fft.fftfreq(512, 0.04)
    r = np.hypot(f[:, None], f[None])
    return otf[np.abs(r - f_cyc_um) < 0.05].mean()


def test_transfer_function_cut_off_follows_na():
    # bright-field cut-off (NA + NA_condenser) / lambda: 2.73 cycles/um at 40x, 3.55 at 100x
    assert otf_at("40x", 0.5) > 0.5
    assert otf_at("100x", 0.5) > 0.5
    assert otf_at("40x", 3.0) < 0.01
    assert otf_at("100x", 3.0) > 0.05


def test_100x_shows_detail_that_40x_does_not():
    core = noise_free(make_core(imperfections=False))
    g40 = snap(core, "40x", 160, 50.0, 30.0)[..., 1]
    g100 = snap(core, "100x", 400, 50.0, 30.0)[..., 1]  # the same 29.6 um square
    # beyond the 40x cut-off the 100x image has real content, far above what lies beyond its own
    assert band_power(g100, 0.074, 2.8, 3.4) > 30 * band_power(g100, 0.074, 4.5, 6.0)
    # on the 40x pixel grid: the same coarse content, much more fine detail at 100x
    d100 = cv2.resize(g100, (160, 160), interpolation=cv2.INTER_AREA)
    low = band_power(d100, 0.185, 0.2, 0.6) / band_power(g40, 0.185, 0.2, 0.6)
    high = band_power(d100, 0.185, 1.8, 2.6) / band_power(g40, 0.185, 1.8, 2.6)
    assert 0.5 < low < 2.5
    assert high > 3 * low


def sharpness_curve(core, objective, zs):
    return np.array(
        [
            cv2.Laplacian(snap(core, objective, 192, 0.0, 12.0, z)[..., 1], cv2.CV_64F).var()
            for z in zs
        ]
    )


def test_depth_of_field_peaks_at_focus_and_shrinks_with_na():
    core = noise_free(make_core(specimen="usaf", imperfections=False))
    zs = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    s40 = sharpness_curve(core, "40x", zs)
    s100 = sharpness_curve(core, "100x", zs)
    assert np.argmax(s40) == np.argmax(s100) == 2
    rel40, rel100 = s40 / s40[2], s100 / s100[2]
    assert rel100[1] < rel40[1]
    assert rel100[3] < rel40[3]


def test_focus_is_at_the_parfocal_offset_of_the_truth():
    core = noise_free(make_core(specimen="usaf", seed=4))
    truth = microscope_of(core).objectives["100x"]
    zs = truth.parfocal_z_um + np.array([-0.6, -0.3, 0.0, 0.3, 0.6])
    assert np.argmax(sharpness_curve(core, "100x", zs)) == 2


def test_pixel_to_slide_maps_100x_onto_40x_as_the_truth_says():
    core = noise_free(make_core(seed=5))
    scope = microscope_of(core)
    f40 = snap(core, "40x", 384, 200.0, -150.0)[..., 1]
    s40 = scope.snap_log[-1]
    f100 = snap(core, "100x", 256, 200.0, -150.0 + 1e-3)[..., 1]
    s100 = scope.snap_log[-1]
    rows, cols = np.mgrid[0:256, 0:256].astype(np.float64)
    x, y = pixel_to_slide(s100, rows, cols)
    inv = cv2.invertAffineTransform(s40.affine())
    c40 = inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]
    r40 = inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]
    resampled = cv2.remap(
        f40.astype(np.float32), c40.astype(np.float32), r40.astype(np.float32), cv2.INTER_CUBIC
    )
    target = cv2.GaussianBlur(f100.astype(np.float32), (0, 0), 1.5)
    assert np.corrcoef(resampled.ravel(), target.ravel())[0, 1] > 0.9
    # ignoring the objective offsets and stage errors (nominal geometry) does not line up
    nominal = s40.model_copy(update={"offset_x_um": 0.0, "offset_y_um": 0.0, "rotation_deg": 0.0})
    nominal100 = s100.model_copy(
        update={"offset_x_um": 0.0, "offset_y_um": 0.0, "rotation_deg": 0.0}
    )
    x, y = pixel_to_slide(nominal100, rows, cols)
    inv = cv2.invertAffineTransform(nominal.affine())
    c40 = inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]
    r40 = inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]
    wrong = cv2.remap(
        f40.astype(np.float32), c40.astype(np.float32), r40.astype(np.float32), cv2.INTER_CUBIC
    )
    assert np.corrcoef(wrong.ravel(), target.ravel())[0, 1] < 0.7


def test_truth_has_documented_imperfections_and_none_when_disabled():
    scope = microscope_of(make_core(seed=2))
    for t in scope.objectives.values():
        assert abs(t.offset_x_um) <= 4
        assert abs(t.offset_y_um) <= 4
        assert abs(t.rotation_deg) < 1
        assert abs(t.magnification_error) < 0.01
    assert scope.xy_stage.backlash_um > 0
    assert scope.xy_stage.repeatability_sigma_um > 0
    perfect = microscope_of(make_core(imperfections=False))
    assert all(
        t.model_dump() == dict.fromkeys(t.model_dump(), 0.0) for t in perfect.objectives.values()
    )
    assert perfect.xy_stage.backlash_um == perfect.xy_stage.repeatability_sigma_um == 0


def test_stage_reports_commanded_position_and_lands_with_backlash():
    core = make_core(seed=6)
    scope = microscope_of(core)
    from_below, from_above = [], []
    for _ in range(8):
        core.setXYPosition(0.0, 0.0)
        core.setXYPosition(100.0, 0.0)
        assert tuple(core.getXYPosition()) == (100.0, 0.0)
        from_below.append(scope.true_xyz[0])
        core.setXYPosition(200.0, 0.0)
        core.setXYPosition(100.0, 0.0)
        from_above.append(scope.true_xyz[0])
    gap = np.mean(from_above) - np.mean(from_below)
    sigma = scope.xy_stage.repeatability_sigma_um
    assert gap == pytest.approx(scope.xy_stage.backlash_um, abs=4 * sigma / np.sqrt(8) * np.sqrt(2))
    assert np.std(from_below) == pytest.approx(sigma, rel=0.8)


def test_specimen_is_deterministic_and_seamless():
    a = TissueSpecimen(seed=3).render(10.0, 20.0, 0.185, 64, 128)
    b = TissueSpecimen(seed=3)
    left = b.render(10.0, 20.0, 0.185, 64, 64)
    right = b.render(10.0 + 64 * 0.185, 20.0, 0.185, 64, 64)
    np.testing.assert_allclose(np.concatenate([left, right], axis=2), a, atol=0.02)
    other = TissueSpecimen(seed=4).render(10.0, 20.0, 0.185, 64, 128)
    assert np.abs(other - a).mean() > 0.02


def test_slide_has_empty_glass_that_images_flat():
    spec = TissueSpecimen(seed=0)
    grid = [(x, y) for x in range(-3000, 3001, 250) for y in range(-3000, 3001, 250)]
    fractions = [spec.tissue_fraction(x, y, 50, 50) for x, y in grid]
    assert max(fractions) > 0.99
    gx, gy = grid[int(np.argmin(fractions))]
    assert min(fractions) == 0.0
    gx_t, gy_t = grid[int(np.argmax(fractions))]
    core = make_core(seed=0, imperfections=False)
    glass = snap(core, "40x", 128, gx, gy)[..., 1]
    tissue = snap(core, "40x", 128, gx_t, gy_t)[..., 1]
    assert glass.std() < 0.25 * tissue.std()
    assert glass.mean() > tissue.mean()


def test_faults_raise_runtime_errors_from_the_core_then_recover():
    core = make_core(faults=FaultConfig(fail_snaps=(1,), fail_moves=(0,)))
    core.setROI(0, 0, 32, 32)
    with pytest.raises(RuntimeError, match="move error"):
        core.setXYPosition(10.0, 10.0)
    core.setXYPosition(10.0, 10.0)
    core.snapImage()
    with pytest.raises(HardwareError, match="camera 'Camera' failed"):
        core.snapImage()
    core.snapImage()
    assert core.getImage().shape == (32, 32, 3)


def test_fault_rates_are_seeded():
    def failures(seed):
        core = make_core(faults=FaultConfig(seed=seed, camera_failure_rate=0.3))
        core.setROI(0, 0, 16, 16)
        out = []
        for _ in range(20):
            try:
                core.snapImage()
                out.append(False)
            except RuntimeError:
                out.append(True)
        return out

    a = failures(1)
    assert a == failures(1)
    assert 1 <= sum(a) <= 15


def test_camera_timeout_fault_waits_then_raises():
    core = make_core(faults=FaultConfig(camera_timeout_rate=1.0, camera_timeout_s=0.01))
    core.setROI(0, 0, 16, 16)
    with pytest.raises(RuntimeError, match=r"timed out after 0\.01 s"):
        core.snapImage()


def test_section_cuts_through_nuclei_so_most_span_mid_plane():
    spec = TissueSpecimen(seed=2)
    z = np.array(spec.layers_z_um)
    assert len(z) >= 8
    assert 4.0 <= z[-1] - z[0] + (z[1] - z[0]) <= 5.0  # a 4-5 um section
    layers = spec.render(200.0, 100.0, 0.185, 400, 400)
    nuclear = -np.log(layers[..., 0]) > 0.08  # haematoxylin absorbs red; eosin hardly
    union, n = ndimage.label(nuclear.any(axis=0))
    mid = nuclear[len(z) // 2 - 1 : len(z) // 2 + 1].any(axis=0)
    cut = len(set(np.unique(union[mid])) - {0})
    assert n >= 20
    assert cut >= 0.75 * n  # most nuclei are cut through mid-section, a few are caps
    # a nucleus spans the section: its middle shows in (nearly) every layer, not in one
    depth = ndimage.maximum(nuclear.sum(axis=0), union, np.arange(1, n + 1))
    assert np.median(depth) >= 6


def test_40x_focus_peaks_once_at_mid_section():
    core = noise_free(make_core(imperfections=False))
    zs = np.arange(-3.0, 3.01, 0.5)
    curve = sharpness_curve(core, "40x", zs)
    assert abs(zs[int(np.argmax(curve))]) <= 0.5
    # one peak: sharpness falls on both sides
    best = int(np.argmax(curve))
    assert np.all(np.diff(curve[: best + 1]) > 0)
    assert np.all(np.diff(curve[best:]) < 0)
