"""The slice-periodicity measure of the slice-dependent artifact."""

import numpy as np
import pytest

from mrsynth.artifacts import slice_periodicity
from mrsynth.errors import MRSynthError


def test_a_period_of_four_slices_is_measured_and_smooth_anatomy_is_not():
    rng = np.random.default_rng(0)
    z = np.arange(64)
    anatomy = np.broadcast_to(np.sin(z / 9.0) + 0.01 * rng.normal(size=64), (10, 12, 64))
    mask = np.ones(anatomy.shape, bool)
    clean = slice_periodicity(anatomy, mask)
    pattern = np.array([0.0, 0.05, 0.05, 0.0])[z % 4]
    striped = slice_periodicity(anatomy + pattern, mask)
    assert clean < 0.02 and striped > 10 * clean
    # only voxels inside the mask count
    outside = np.zeros_like(mask)
    outside[:5] = True
    noisy_elsewhere = np.where(outside, anatomy, anatomy + pattern)
    assert slice_periodicity(noisy_elsewhere, outside) == pytest.approx(clean, abs=1e-9)


def test_too_few_slices_are_refused():
    with pytest.raises(MRSynthError, match="at least 16"):
        slice_periodicity(np.zeros((4, 4, 8)), np.ones((4, 4, 8), bool))
