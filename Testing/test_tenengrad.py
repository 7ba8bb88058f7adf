"""Tenengrad sharpness (paper 004) on small known images."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mrsynth.errors import MRSynthError
from mrsynth.metrics import tenengrad


def test_step_edge_gives_its_height_over_the_width():
    """A vertical step of height h in an n x n image: gradient h/2 on the two columns beside it."""
    n, h = 16, 3.0
    image = np.zeros((n, n))
    image[:, n // 2 :] = h
    assert tenengrad(image) == pytest.approx(h / n)
    assert tenengrad(np.full((n, n), 7.0)) == 0.0
    assert tenengrad(image, threshold=h) == 0.0  # every magnitude is below the threshold


def test_blur_lowers_it_and_volumes_are_axial_slices():
    rng = np.random.default_rng(0)
    image = rng.random((32, 32))
    assert tenengrad(ndimage.gaussian_filter(image, 2)) < tenengrad(image)
    volume = np.stack([image, image * 2])
    assert tenengrad(volume) == pytest.approx(1.5 * tenengrad(image))
    mask = np.zeros_like(volume, dtype=bool)
    mask[1] = True
    assert tenengrad(volume, mask) == pytest.approx(2 * tenengrad(image))
    with pytest.raises(MRSynthError, match="2D slice or a 3D volume"):
        tenengrad(np.zeros(5))
