"""The MRI2MRI input normalisation gives the same network input for any a * x + b (a > 0)."""

from __future__ import annotations

import numpy as np
import pytest

from mrsynth.errors import MRSynthError
from mrsynth.normalisation import LANDMARK_QUANTILES, invariant_mask, landmarks, normalise_affine, standardise
from mrsynth.volume_io import read_volume, to_paper


def test_raw_rescaled_and_z_scored_scans_normalise_alike(shared_data):
    raw = to_paper(read_volume(shared_data / "tcga_brats_space/TCGA-FG-6692_t1.nii.gz")).astype(np.float64)
    mask = invariant_mask(raw)
    reference, _ = normalise_affine(raw, mask)
    brain = raw > 0
    z_scored = (raw - raw[brain].mean()) / raw[brain].std()
    for changed in (3.7 * raw - 120.0, 0.01 * raw + 5.0, 250.0 * raw + 1e4, z_scored):
        changed_mask = invariant_mask(changed)
        assert np.array_equal(changed_mask, mask)
        normalised, _ = normalise_affine(changed, changed_mask)
        assert np.abs(normalised - reference).max() < 1e-5


def test_background_goes_to_zero_and_the_body_p99_to_one():
    rng = np.random.default_rng(0)
    volume = np.full((12, 40, 40), 37.0)
    volume[3:9, 10:30, 10:30] = rng.uniform(200.0, 240.0, size=(6, 20, 20))
    mask = invariant_mask(volume)
    assert mask.sum() == 6 * 20 * 20
    normalised, (background, scale) = normalise_affine(volume, mask)
    assert background == 37.0
    assert np.allclose(normalised[~mask], 0.0)
    assert np.percentile(normalised[mask], 99) == pytest.approx(1.0, abs=1e-6)
    assert scale == pytest.approx(np.percentile(volume[mask], 99) - 37.0)


def test_unusable_images_are_refused_by_name():
    with pytest.raises(MRSynthError, match="constant"):
        invariant_mask(np.ones((4, 8, 8)))
    with pytest.raises(MRSynthError, match="empty"):
        normalise_affine(np.arange(64.0).reshape(4, 4, 4), np.zeros((4, 4, 4), dtype=bool))


def test_standardise_moves_the_landmarks_onto_the_reference_and_keeps_background_and_p99(shared_data):
    raw = to_paper(read_volume(shared_data / "tcga_brats_space/TCGA-FG-6692_t1c.nii.gz")).astype(np.float64)
    mask = invariant_mask(raw)
    normalised, _ = normalise_affine(raw, mask)
    own = landmarks(normalised, mask)
    reference = list(np.linspace(0.15, 0.8, len(LANDMARK_QUANTILES)))  # a darker brain than this T1c's
    assert own[LANDMARK_QUANTILES.index(50.0)] > 0.6  # the scan that motivated it: a bright brain median
    out = standardise(normalised, mask, reference)
    np.testing.assert_allclose(landmarks(out, mask), reference, atol=2e-3)
    np.testing.assert_array_equal(out[normalised <= 0], normalised[normalised <= 0])  # background untouched
    assert np.percentile(out[mask], 99) == pytest.approx(1.0, abs=1e-4)  # the affine scale's p99 stays 1
    order = np.argsort(normalised[mask])
    assert np.all(np.diff(out[mask][order]) >= -1e-6)  # monotonic: no intensity order is swapped
    changed = 3.7 * raw - 120.0  # any a * x + b of the raw scan gives the same standardised image
    again = standardise(normalise_affine(changed, invariant_mask(changed))[0], mask, reference)
    assert np.abs(again - out).max() < 1e-4
    with pytest.raises(MRSynthError, match="reference landmarks"):
        standardise(normalised, mask, reference[:-1])
