"""The MRI2MRI input normalisation gives the same network input for any a * x + b (a > 0)."""

from __future__ import annotations

import numpy as np
import pytest

from mrsynth.errors import MRSynthError
from mrsynth.normalisation import invariant_mask, normalise_affine
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
