"""Masks for real-scan preparation: body mask, posterior dilation from the geometry, sampling mask, checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from mrsynth.errors import MRSynthError
from mrsynth.masks import body_mask, check_mask, dilate_posterior, posterior_step, sampling_mask
from mrsynth.volume_io import from_paper, to_paper


@pytest.fixture
def t2(shared_data: Path) -> sitk.Image:
    """A real T2 (TCGA DU-7294), cropped small: 100 x 120 x 40 voxels of 1 mm."""
    image = sitk.ReadImage(str(shared_data / "tcga_brats_space" / "TCGA-DU-7294_t2.nii.gz"), sitk.sitkFloat32)
    return image[70:170, 60:180, 50:90]


def _ap_extent(mask: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero(mask.any(axis=(0, 2)))
    return int(rows[0]), int(rows[-1])


def test_posterior_dilation_grows_towards_the_back_only(t2):
    mask = body_mask(to_paper(t2))
    grown = dilate_posterior(mask, t2, 10.0)
    assert (grown >= mask).all()
    (lo, hi), (glo, ghi) = _ap_extent(mask), _ap_extent(grown)
    step = posterior_step(t2)
    # Posterior is +y in LPS; grown by 10 voxels of 1 mm on that side, not on the other.
    if step > 0:
        assert (glo, ghi) == (lo, min(hi + 10, mask.shape[1] - 1))
    else:
        assert (glo, ghi) == (max(lo - 10, 0), hi)
    # The physical positions of the new voxels lie posterior (larger LPS y) of the body they grew from.
    added = from_paper((grown & ~mask).astype(np.uint8), t2)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(added)
    body_stats = sitk.LabelShapeStatisticsImageFilter()
    body_stats.Execute(from_paper(mask.astype(np.uint8), t2))
    assert stats.GetCentroid(1)[1] > body_stats.GetCentroid(1)[1]


def test_posterior_side_follows_the_direction_cosines_not_the_index_order(t2):
    flipped = sitk.Flip(t2, [False, True, False])  # same anatomy, AP index axis reversed in the geometry
    assert posterior_step(flipped) == -posterior_step(t2)
    mask, mask_flipped = body_mask(to_paper(t2)), body_mask(to_paper(flipped))
    grown = from_paper(dilate_posterior(mask, t2, 8.0).astype(np.uint8), t2)
    grown_flipped = from_paper(dilate_posterior(mask_flipped, flipped, 8.0).astype(np.uint8), flipped)
    # Resampled back onto the original grid, both dilations cover the same physical voxels.
    back = sitk.Resample(grown_flipped, t2, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(grown))


def test_sampling_mask_lets_a_centred_patch_hold_at_least_some_body(t2):
    mask = body_mask(to_paper(t2))
    patch = (16, 16, 8)
    sampling = sampling_mask(mask, patch)
    assert (sampling >= mask).all() and sampling.sum() > mask.sum()
    centres = np.argwhere(sampling & ~mask)[::97]
    for centre in centres:
        lo = [max(c - p // 2, 0) for c, p in zip(centre, patch)]
        box = mask[tuple(slice(a, a + p) for a, p in zip(lo, patch))]
        assert box.any()


def test_masks_of_the_wrong_grid_empty_or_not_binary_are_refused_by_name(t2):
    good = from_paper(body_mask(to_paper(t2)).astype(np.uint8), t2)
    assert check_mask(good, t2, "bone mask", binary=True).any()
    with pytest.raises(MRSynthError, match="fixed mask lies on another grid"):
        check_mask(good[:-1, :, :], t2, "fixed mask")
    with pytest.raises(MRSynthError, match="moving mask is empty"):
        check_mask(good * 0, t2, "moving mask")
    labels = sitk.GetArrayFromImage(good) * 2  # a label map (0, 2) with one voxel of label 1
    labels[0, 0, 0] = 1
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(t2)
    with pytest.raises(MRSynthError, match=r"bone mask is not binary \(values 0, 1, 2\)"):
        check_mask(label_image, t2, "bone mask", binary=True)
