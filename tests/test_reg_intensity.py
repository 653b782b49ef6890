"""Flat-field correction and the 100x -> 40x intensity match, on the simulated microscope."""

import json

import cv2
import numpy as np
import pytest

from deepscope.formats.pairs import load_pair, load_pairset
from model.registration import RegistrationOptions, register_dataset
from model.registration.flatfield import FlatField
from simulators import make_core, microscope_of
from simulators.dataset import glassy_region, make_simulated_dataset

SEED = 5
SENSOR = 256
REGION_UM = 2 * 0.85 * SENSOR * 0.185 + SENSOR * 0.185


def _blank(core, objective, x, y, exposure_ms, n):
    core.setConfig("Objective", objective)
    core.setExposure(exposure_ms)
    core.setXYPosition(x, y)
    core.setPosition(microscope_of(core).objectives[objective].parfocal_z_um)
    frames = []
    for _ in range(n):
        core.snapImage()
        frames.append(core.getImage().astype(np.float32))
    return np.mean(frames, axis=0)


def _corner_to_centre(frame, dark):
    """Mean brightness above dark in the corners over that at the centre (1 = even)."""
    g = cv2.GaussianBlur(frame - dark, (0, 0), 4).mean(axis=-1)
    k = g.shape[0] // 8
    corners = np.mean([g[:k, :k], g[:k, -k:], g[-k:, :k], g[-k:, -k:]])
    c = g.shape[0] // 2
    return corners / g[c - k : c + k, c - k : c + k].mean()


@pytest.mark.parametrize("objective", ["40x", "100x"])
def test_flat_field_removes_the_vignetting_of_a_blank_frame(objective):
    core = make_core(seed=SEED, sensor=(SENSOR, SENSOR))
    _, _, gx, gy = glassy_region(SEED, REGION_UM, hole_um=SENSOR * 0.185 + 10)
    full = _blank(core, objective, gx, gy, 10.0, 8)
    half = _blank(core, objective, gx, gy, 5.0, 8)
    ff = FlatField.from_frames(full, half)
    offset = microscope_of(core).camera.offset_counts
    np.testing.assert_allclose(ff.dark, offset, atol=3.0)  # the camera offset, without a shutter
    fresh = _blank(core, objective, gx, gy, 10.0, 1)  # a new frame: its own noise
    before = _corner_to_centre(fresh, offset)
    after = _corner_to_centre(ff.apply(fresh), offset)
    assert before < 0.9  # the simulated illumination falls off towards the corners
    assert abs(after - 1) < 0.01
    assert ff.falloff() == pytest.approx(1 - before, abs=0.05)


def test_flat_field_rejects_frames_of_another_roi():
    frame = np.full((32, 32, 3), 1000.0, np.float32)
    ff = FlatField.from_frames(frame, frame / 2 + 50)
    with pytest.raises(Exception, match="same camera ROI"):
        ff.apply(np.zeros((16, 32, 3), np.float32))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    rx, ry, gx, gy = glassy_region(SEED, REGION_UM, hole_um=SENSOR * 0.185 + 10)
    return make_simulated_dataset(
        tmp_path_factory.mktemp("intensity") / "ds",
        seed=SEED,
        sensor_px=SENSOR,
        n_targets=4,
        z_slices=1,
        centre_um=(rx, ry),
        min_tissue=0.8,
        flat_field_um=(gx, gy),
    )


def _channel_mean_differences(pairs_dir):
    """Per pair, ``mean(hr) - mean(bicubic(lr))`` per channel, in counts."""
    pairset = load_pairset(pairs_dir)
    out = []
    for p in pairset.accepted():
        lr, hr = load_pair(pairs_dir, p)
        up = cv2.resize(
            lr.astype(np.float32), hr.shape[1::-1], interpolation=cv2.INTER_CUBIC
        ).reshape(hr.shape)
        out.append(hr.reshape(-1, 3).astype(np.float64).mean(0) - up.reshape(-1, 3).mean(0))
    return pairset, np.array(out)


def test_matched_targets_have_the_40x_intensities(dataset, tmp_path):
    raw_dir = tmp_path / "raw"
    raw, diff_raw = _channel_mean_differences(
        register_dataset(dataset.path, raw_dir, RegistrationOptions(match_intensity=False)).out_dir
    )
    assert len(diff_raw) >= 3
    # as acquired, the oil objective's targets are darker, most in blue
    assert np.all(diff_raw < -20)
    assert np.all(diff_raw[:, 2] < diff_raw[:, 0])
    assert all(p.intensity is None for p in raw.accepted())

    out = tmp_path / "matched"
    matched, diff = _channel_mean_differences(
        register_dataset(dataset.path, out, RegistrationOptions()).out_dir
    )
    assert len(diff) == len(diff_raw)
    assert np.abs(diff).max() < 2.0
    assert set(matched.flat_field) == {"tile", "target"}
    assert matched.flat_field["target"] > matched.flat_field["tile"] > 0.05
    # pairs.json records what was applied: stored hr = gain * hr as acquired + offset
    for p, q in zip(matched.accepted(), raw.accepted(), strict=True):
        assert p.intensity is not None
        hr, hr_raw = load_pair(out, p)[1].astype(float), load_pair(raw_dir, q)[1].astype(float)
        expected = hr_raw * np.array(p.intensity.gain) + np.array(p.intensity.offset)
        assert np.abs(hr - expected).mean() < 1.0
    qc = json.loads((out / "qc.json").read_text())
    assert [q["intensity"]["gain"] for q in qc["pairs"] if q["accepted"]] == [
        list(p.intensity.gain) for p in matched.accepted() if p.intensity
    ]
    assert "hr gain" in (out / "qc.md").read_text()


def test_flat_field_off_leaves_the_frames_as_acquired(dataset, tmp_path):
    opts = RegistrationOptions(flat_field=False, match_intensity=False)
    pairset = load_pairset(register_dataset(dataset.path, tmp_path, opts).out_dir)
    assert pairset.flat_field == {}
    assert pairset.accepted()
