"""Metrics and masks against independent implementations, on a real MR pair (BraTS-MET-00110 T1 and T2).

The T1 plays the prediction and the T2 the reference: a real, imperfect match, so SSIM, MI and the
error maps take non-trivial values everywhere.
"""

from __future__ import annotations

import itertools
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from sklearn.metrics import mutual_info_score

from mrsynth import metrics
from mrsynth.errors import MRSynthError
from mrsynth.masks import body_mask, normalise_p99, otsu_threshold
from mrsynth.volume_io import to_paper

BRATS = "brats_met_00110/BraTS-MET-00110-000-{}.nii.gz"


@lru_cache(maxsize=1)
def _load(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t1 = to_paper(sitk.ReadImage(str(folder / BRATS.format("t1n")))).astype(np.float64)
    t2 = to_paper(sitk.ReadImage(str(folder / BRATS.format("t2w")))).astype(np.float64)
    brain = t2 != 0  # the data are skull-stripped: the brain is the non-zero region
    pred, ref = t1 / np.percentile(t1[brain], 99), t2 / np.percentile(t2[brain], 99)
    for array in (pred, ref, brain):
        array.setflags(write=False)
    return pred, ref, brain


@pytest.fixture
def pair(shared_data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prediction, reference, brain mask) in paper order, each image divided by its p99 in the brain."""
    return _load(shared_data)


def _brute_force_ssim(x: np.ndarray, y: np.ndarray, window: tuple[int, int, int], data_range: float) -> np.ndarray:
    """SSIM by explicitly summing every window offset over symmetrically padded arrays (slow, obvious)."""
    half = [w // 2 for w in window]
    xp = np.pad(x, [(h, h) for h in half], mode="symmetric")
    yp = np.pad(y, [(h, h) for h in half], mode="symmetric")
    sums = {key: np.zeros(x.shape) for key in ("x", "y", "xx", "yy", "xy")}
    for offset in itertools.product(*(range(w) for w in window)):
        sl = tuple(slice(o, o + n) for o, n in zip(offset, x.shape, strict=True))
        a, b = xp[sl], yp[sl]
        sums["x"] += a
        sums["y"] += b
        sums["xx"] += a * a
        sums["yy"] += b * b
        sums["xy"] += a * b
    n = float(np.prod(window))
    mx, my = sums["x"] / n, sums["y"] / n
    vx = (sums["xx"] - n * mx * mx) / (n - 1)
    vy = (sums["yy"] - n * my * my) / (n - 1)
    cxy = (sums["xy"] - n * mx * my) / (n - 1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def test_ssim_map_equals_scikit_image_for_a_cubic_window(pair):
    slab = slice(40, 120)  # half the slices, all of the in-plane borders, to keep the test short
    pred, ref, brain = (array[slab] for array in pair)
    data_range = float(ref.max() - ref.min())
    mssim, expected = structural_similarity(
        pred, ref, win_size=7, data_range=data_range, use_sample_covariance=True, full=True
    )
    ours = metrics.ssim_map(pred, ref, (7, 7, 7), data_range)
    # Both use the same float64 box sums, so they agree far below the required 1e-3.
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)
    assert ours[3:-3, 3:-3, 3:-3].mean() == pytest.approx(mssim, abs=1e-6)
    assert 0.3 < mssim < 0.95  # a real, imperfect match
    assert metrics.ssim(pred, ref, brain, (7, 7, 7), data_range) == pytest.approx(expected[brain].mean(), abs=1e-6)


def test_anisotropic_paper_window_matches_brute_force_along_the_right_axes(pair):
    pred, ref, _ = pair
    crop = (slice(50, 90), slice(90, 140), slice(100, 124))  # SI, AP, LR: through the brain
    x, y = pred[crop], ref[crop]
    data_range = float(y.max() - y.min())
    expected = _brute_force_ssim(x, y, (21, 21, 3), data_range)
    ours = metrics.ssim_map(x, y, (21, 21, 3), data_range)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)
    # The window is anisotropic, so applying it along other axes would give a different map.
    swapped = metrics.ssim_map(x, y, (3, 21, 21), data_range)
    assert np.abs(swapped - expected).max() > 1e-2


def test_ssim_time_for_the_paper_window_on_a_full_brats_volume(pair):
    pred, ref, brain = pair
    start = time.perf_counter()
    value = metrics.ssim(pred, ref, brain, metrics.PAPER_WINDOW)
    elapsed = time.perf_counter() - start
    print(f"\nSSIM 21x21x3 on {ref.shape} (SI, AP, LR) in {elapsed:.2f} s")
    assert 0.0 < value < 1.0


def test_default_data_range_is_the_reference_range_inside_the_mask(pair):
    pred, ref, brain = (array[40:100, 50:190, 50:190] for array in pair)
    in_brain = float(ref[brain].max() - ref[brain].min())
    assert metrics.ssim(pred, ref, brain, (7, 7, 7)) == pytest.approx(
        metrics.ssim(pred, ref, brain, (7, 7, 7), data_range=in_brain), abs=1e-12
    )
    assert metrics.psnr(pred, ref, brain) == pytest.approx(metrics.psnr(pred, ref, brain, in_brain), abs=1e-12)


def test_mutual_information_equals_scikit_learn_on_the_same_128_bins(pair):
    pred, ref, brain = pair

    def digitise(values: np.ndarray) -> np.ndarray:
        scaled = (values - values.min()) / (values.max() - values.min()) * 128
        return np.minimum(np.floor(scaled), 127).astype(int)

    expected = mutual_info_score(digitise(pred[brain]), digitise(ref[brain]))
    value = metrics.mutual_information(pred, ref, brain)
    assert value == pytest.approx(expected, abs=1e-6)
    assert value > 0.1
    # MI of an image with itself is its entropy over the 128 bins.
    counts = np.bincount(digitise(ref[brain]))
    p = counts[counts > 0] / counts.sum()
    assert metrics.mutual_information(ref, ref, brain) == pytest.approx(-np.sum(p * np.log(p)), abs=1e-6)


def test_mutual_information_ignores_the_intensity_scale(pair):
    pred, ref, brain = pair
    assert metrics.mutual_information(3.0 * pred + 1.0, ref, brain) == pytest.approx(
        metrics.mutual_information(pred, ref, brain), abs=1e-6
    )


def test_mae_and_psnr_equal_direct_formula_and_scikit_image(pair):
    pred, ref, brain = pair
    assert metrics.mae(pred, ref, brain) == pytest.approx(np.abs(pred[brain] - ref[brain]).mean(), rel=1e-12)
    assert metrics.mae(pred, ref) == pytest.approx(np.abs(pred - ref).mean(), rel=1e-12)
    data_range = float(ref[brain].max() - ref[brain].min())
    expected = peak_signal_noise_ratio(ref[brain], pred[brain], data_range=data_range)
    assert metrics.psnr(pred, ref, brain, data_range) == pytest.approx(expected, abs=1e-9)


def test_identical_images_give_perfect_scores(pair):
    _, ref, brain = (array[40:100, 50:190, 50:190] for array in pair)
    assert metrics.mae(ref, ref, brain) == 0.0
    assert metrics.ssim(ref, ref, brain) == pytest.approx(1.0, abs=1e-9)
    assert metrics.psnr(ref, ref, brain) == float("inf")
    assert metrics.relative_error_map(ref, ref).max() == 0.0


def test_relative_error_map_uses_a_floor_where_the_reference_is_near_zero(pair):
    pred, ref, brain = pair
    re = metrics.relative_error_map(pred, ref, floor=0.05, mask=brain)
    floor = 0.05 * np.percentile(np.abs(ref[brain]), 99)
    expected = np.abs(pred - ref) / np.maximum(np.abs(ref), floor)
    np.testing.assert_allclose(re, expected, rtol=1e-6)
    assert re.dtype == np.float32
    assert np.all(np.isfinite(re))
    background = ref == 0
    np.testing.assert_allclose(re[background], np.abs(pred[background]) / floor, rtol=1e-6)


@pytest.mark.parametrize("window", [(21, 21), (20, 21, 3), (21, 21, 0), (1, 1, 1), (21, 21, 301)])
def test_bad_windows_are_refused(window):
    a = np.random.default_rng(0).random((30, 30, 30))
    with pytest.raises(MRSynthError, match="window"):
        metrics.ssim_map(a, a + 0.1, window)


def test_masks_and_shapes_are_checked():
    rng = np.random.default_rng(1)
    a, b = rng.random((25, 25, 5)), rng.random((25, 25, 5))
    empty = np.zeros(a.shape, dtype=bool)
    for metric in (metrics.mae, metrics.mutual_information, metrics.ssim, metrics.psnr):
        with pytest.raises(MRSynthError, match="empty"):
            metric(a, b, empty)
        with pytest.raises(MRSynthError, match="does not fit"):
            metric(a, b, np.ones((25, 25, 4), dtype=bool))
    with pytest.raises(MRSynthError, match="resample"):
        metrics.mae(a, b[:, :, :4])
    with pytest.raises(MRSynthError, match="constant"):
        metrics.ssim(a, np.ones_like(b), window=(3, 3, 3))


def test_body_mask_of_a_real_brain_covers_the_skull_stripped_brain(pair):
    _, ref, brain = pair
    mask = body_mask(ref)
    dice = 2 * np.count_nonzero(mask & brain) / (np.count_nonzero(mask) + np.count_nonzero(brain))
    assert dice > 0.9
    assert ndimage.label(mask)[1] == 1


def test_body_mask_keeps_the_largest_component_and_fills_its_holes():
    grid = np.indices((40, 40, 40)).astype(float)
    radius = np.sqrt(((grid - 20) ** 2).sum(axis=0))
    volume = np.where((radius > 8) & (radius < 14), 100.0, 0.0)  # hollow ball
    volume[1:4, 1:4, 1:4] = 100.0  # small bright blob in the background
    mask = body_mask(volume)
    np.testing.assert_array_equal(mask, radius < 14)
    assert body_mask(volume, threshold=50.0).sum() == mask.sum()
    with pytest.raises(MRSynthError, match="threshold"):
        body_mask(volume, threshold=1000.0)


def test_otsu_threshold_separates_two_tissues_like_scikit_image():
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.normal(10, 2, 5000), rng.normal(50, 5, 5000)])
    threshold = otsu_threshold(values)
    truth = np.arange(values.size) >= 5000
    assert np.mean((values > threshold) == truth) > 0.999
    bin_width = (values.max() - values.min()) / 256
    assert threshold == pytest.approx(threshold_otsu(values, nbins=256), abs=bin_width)


def test_normalise_p99_divides_by_the_percentile_inside_the_mask(pair):
    _, ref, brain = pair
    raw = ref * 1234.0
    normalised, p99 = normalise_p99(raw, brain)
    assert p99 == pytest.approx(np.percentile(raw[brain], 99))
    assert np.percentile(normalised[brain], 99) == pytest.approx(1.0)
    with pytest.raises(MRSynthError, match="not positive"):
        normalise_p99(-raw, brain)
    with pytest.raises(MRSynthError, match="empty"):
        normalise_p99(raw, np.zeros_like(brain))
