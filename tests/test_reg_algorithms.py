"""Registration building blocks on synthetic images with known transforms."""

import cv2
import numpy as np
import pytest
from skimage import data

from model.registration import align
from model.registration.focus import best_focus_index, edof_wavelet, sharpness, to_gray
from model.registration.splits import assign_splits
from model.registration.stitch import stitch_tiles


@pytest.fixture(scope="module")
def scene():
    """A textured grayscale scene on a fine grid (5 fine pixels per 40x pixel)."""
    rng = np.random.default_rng(0)
    base = cv2.resize(to_gray(data.astronaut()), (2045, 2045), interpolation=cv2.INTER_CUBIC)
    base += cv2.GaussianBlur(rng.normal(0, 30, base.shape).astype(np.float32), (0, 0), 2)
    return base


def test_stitch_recovers_tile_offsets_and_rejects_blank_edges():
    img = np.tile(to_gray(data.astronaut()), (2, 2))
    rng = np.random.default_rng(1)
    true, prior, tiles = [], [], []
    for r in range(3):
        for c in range(3):
            tx, ty = 10 + c * 170 + rng.integers(-6, 7), 10 + r * 170 + rng.integers(-6, 7)
            true.append((tx, ty))
            prior.append((c * 170, r * 170))
            tiles.append(img[ty : ty + 200, tx : tx + 200] + rng.normal(0, 3, (200, 200)))
    tiles[8] = np.full((200, 200), 100.0) + rng.normal(0, 1, (200, 200))  # blank glass
    mosaic = stitch_tiles(tiles, np.array(prior, float), max_shift_px=20)
    err = mosaic.positions[:8] - np.array(true[:8], float)
    err -= err.mean(axis=0)
    assert np.abs(err).max() < 0.2
    blank = [e for e in mosaic.edges if 8 in (e.i, e.j)]
    assert blank
    assert not any(e.kept for e in blank)
    assert all(e.reason for e in blank)
    # the blank tile stays at its stage position (relative to its neighbours' solve)
    assert np.allclose(
        mosaic.positions[8] - mosaic.positions[0], np.subtract(prior[8], prior[0]), atol=10
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_locate_and_refine_known_similarity(scene, seed):
    rng = np.random.default_rng(seed)
    lr = cv2.resize(cv2.GaussianBlur(scene, (0, 0), 2.0), (409, 409), interpolation=cv2.INTER_AREA)
    fine_to_lr = align.scaling(1 / 5, 1 / 5)
    rot = np.radians(rng.uniform(-1, 1))
    k = 2 / (1 + rng.uniform(-0.01, 0.01))  # fine pixels per 100x pixel
    n = 250
    hr_to_fine = np.array(
        [[k * np.cos(rot), -k * np.sin(rot), 0], [k * np.sin(rot), k * np.cos(rot), 0]]
    )
    hr_to_fine[:, 2] = rng.uniform(700, 1300, 2) - hr_to_fine[:, :2] @ np.full(2, (n - 1) / 2)
    hr = cv2.warpAffine(
        cv2.GaussianBlur(scene, (0, 0), 0.8),
        hr_to_fine,
        (n, n),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
    )
    hr += rng.normal(0, 2, hr.shape).astype(np.float32)
    truth = align.compose(fine_to_lr, hr_to_fine)
    small = cv2.resize(hr, (100, 100), interpolation=cv2.INTER_AREA)
    to_small = align.scaling(0.4, 0.4)
    guess = align.apply(truth, np.array([[0.0, 0.0]]))[0] + rng.uniform(-8, 8, 2)
    match = align.locate(lr, small, guess[0], guess[1], 20)
    assert match.ncc > 0.9
    assert not match.at_edge
    warp, cc = align.refine_ecc(small, lr, align.translation(match.x, match.y))
    sim, residual = align.nearest_similarity(align.compose(warp, to_small), n, n)
    grid = np.array([[x, y] for x in (0, n - 1) for y in (0, n - 1)] + [[n / 2, n / 2]])
    err_100x = np.linalg.norm(align.apply(sim, grid) - align.apply(truth, grid), axis=1) * 2.5
    assert err_100x.max() < 0.2
    _, _, rot_e, s_e = align.similarity_params(sim)
    _, _, rot_t, s_t = align.similarity_params(truth)
    assert abs(rot_e - rot_t) < 0.03
    assert abs(s_e / s_t - 1) < 1e-3
    assert cc > 0.99
    assert residual < 0.1


def test_locate_reports_match_on_window_edge(scene):
    lr = cv2.resize(scene, (409, 409), interpolation=cv2.INTER_AREA)
    tpl = lr[200:260, 150:210]
    assert not align.locate(lr, tpl, 150 + 5, 200 - 4, 10).at_edge
    far = align.locate(lr, tpl, 150 + 30, 200, 10)
    assert far.at_edge
    with pytest.raises(ValueError, match="window"):
        align.locate(lr[:50, :50], tpl, 0, 0, 5)


def test_nearest_similarity_of_similarity_and_of_shear():
    rot, s = np.radians(0.7), 0.401
    sim = np.array(
        [[s * np.cos(rot), -s * np.sin(rot), 12.0], [s * np.sin(rot), s * np.cos(rot), -3.0]]
    )
    fit, residual = align.nearest_similarity(sim, 300, 200)
    assert np.allclose(fit, sim)
    assert residual < 1e-9
    sheared = sim.copy()
    sheared[0, 1] += 0.01
    _, residual = align.nearest_similarity(sheared, 300, 200)
    assert residual > 0.3
    assert np.allclose(align.compose(align.invert(sim), sim), np.eye(3)[:2])


def test_edof_keeps_what_is_sharp_in_each_slice(scene):
    sharp = scene[:256, :256].copy()
    blur = cv2.GaussianBlur(sharp, (0, 0), 4)
    left = np.where(np.arange(256)[None, :] < 128, sharp, blur)
    right = np.where(np.arange(256)[None, :] >= 128, sharp, blur)
    stack = np.stack([left, right])[..., None]
    fused = edof_wavelet(stack)[..., 0]
    assert fused.shape == sharp.shape
    inner = (slice(16, -16), slice(16, -16))
    err_fused = np.abs(fused - sharp)[inner].mean()
    assert err_fused < 0.6 * min(np.abs(s - sharp)[inner].mean() for s in (left, right))
    assert abs(fused.mean() - sharp.mean()) < 0.01 * sharp.mean()
    assert sharpness(fused) > max(sharpness(left), sharpness(right))
    assert best_focus_index(np.stack([blur, sharp, blur])) == 1


def test_edof_colour_follows_the_sharp_slice():
    sharp = data.astronaut()[:256, :256].astype(np.float32)
    blur = cv2.GaussianBlur(sharp, (0, 0), 4)
    left_sharp = (np.arange(256) < 128)[None, :, None]
    stack = np.stack([np.where(left_sharp, sharp, blur), np.where(left_sharp, blur, sharp)])
    fused = edof_wavelet(stack)
    assert fused.shape == sharp.shape
    inner = (slice(16, -16), slice(16, -16))
    err = np.abs(fused - sharp)[inner].mean(axis=(0, 1))
    err_slices = [np.abs(s - sharp)[inner].mean(axis=(0, 1)) for s in stack]
    assert np.all(err < 0.6 * np.minimum(*err_slices))


def test_splits_seeded_disjoint_and_proportional():
    ids = [f"f{i:02d}" for i in range(20)]
    a = assign_splits(ids, (0.7, 0.15, 0.15), seed=3)
    assert a == assign_splits(list(reversed(ids)), (0.7, 0.15, 0.15), seed=3)
    assert a != assign_splits(ids, (0.7, 0.15, 0.15), seed=4)
    counts = {s: sum(v == s for v in a.values()) for s in ("train", "val", "test")}
    assert counts == {"train": 14, "val": 3, "test": 3}
    small = assign_splits(["a", "b", "c"], (0.7, 0.15, 0.15), seed=0)
    assert sorted(small.values()) == ["test", "train", "val"]
    assert assign_splits([], (0.7, 0.15, 0.15), seed=0) == {}


def test_edof_does_not_amplify_noise(scene):
    rng = np.random.default_rng(4)
    clean = scene[:256, :256].astype(np.float32)
    sigma = 0.05 * float(clean.std())
    # five exposures of one plane: each slice as sharp as the others, noise independent
    stack = clean[None] + rng.normal(0, sigma, (5, 256, 256)).astype(np.float32)
    fused = edof_wavelet(stack[..., None])[..., 0]
    err = float(np.sqrt(np.mean((fused - clean) ** 2)))
    assert err < 0.85 * sigma  # the textbook max-magnitude rule gives ~1.05 sigma
    # where no slice holds detail (glass), the slices are averaged: noise / sqrt(5) ~ 0.45
    glass = np.full((5, 128, 128), 1000.0, np.float32) + rng.normal(0, 30, (5, 128, 128))
    flat = edof_wavelet(glass.astype(np.float32)[..., None])[..., 0]
    assert float(flat.std()) < 0.6 * 30
    # and detail present in one slice only still comes from that slice: the fine band of the
    # clean image is kept (a blurred slice keeps 0.41 of it), and the error is below the noise
    blur = cv2.GaussianBlur(clean, (0, 0), 3)
    one = np.stack([blur, blur, clean, blur, blur]) + rng.normal(0, sigma, (5, 256, 256))
    fused_one = edof_wavelet(one.astype(np.float32)[..., None])[..., 0]
    band = cv2.GaussianBlur(clean, (0, 0), 1) - cv2.GaussianBlur(clean, (0, 0), 2)
    fused_band = cv2.GaussianBlur(fused_one, (0, 0), 1) - cv2.GaussianBlur(fused_one, (0, 0), 2)
    assert float((fused_band * band).sum() / (band * band).sum()) > 0.8
    assert float(np.sqrt(np.mean((fused_one - clean) ** 2))) < 0.8 * sigma


def test_edof_leaves_no_seam_where_the_sharp_slice_changes(scene):
    # two noise-free slices, each sharp on one side of a curved boundary: the fusion must follow
    # the boundary without the blocky steps a hard per-coefficient choice in a decimated
    # wavelet transform leaves (max error 0.6 of the blur's, streaks in the 100x targets)
    sharp = scene[:256, :256].astype(np.float32)
    blur = cv2.GaussianBlur(sharp, (0, 0), 3)
    yy, xx = np.mgrid[:256, :256]
    inside = ((yy - 121.3) ** 2 + (xx - 133.7) ** 2 < 70.0**2).astype(np.float32)
    m = cv2.GaussianBlur(inside, (0, 0), 1.5)
    stack = np.stack([m * sharp + (1 - m) * blur, (1 - m) * sharp + m * blur])
    fused = edof_wavelet(stack[..., None])[..., 0]
    inner = (slice(16, -16), slice(16, -16))
    assert np.abs(fused - sharp)[inner].max() < 0.4 * np.abs(blur - sharp)[inner].max()
    assert np.sqrt(np.mean((fused - sharp)[inner] ** 2)) < 0.5 * min(
        np.sqrt(np.mean((s - sharp)[inner] ** 2)) for s in stack
    )
