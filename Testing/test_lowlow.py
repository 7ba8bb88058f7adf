"""The Low-to-low approach (paper 000, section II.D): GE on the thick grid, training and inference."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from mrsynth.checkpoint import load_checkpoint
from mrsynth.grids import thick_grid
from mrsynth.lowlow import thick_images, to_thick
from mrsynth.simulate import bundled_phantom, simulate
from mrsynth.synthesis import synthesize
from mrsynth.training import load_config, train
from mrsynth.volume_io import same_grid


@pytest.mark.parametrize("method", ["weighted", "bspline"])
def test_a_ramp_lands_on_the_thick_slice_centres(method):
    ramp = np.broadcast_to(np.arange(32.0), (3, 4, 32))
    thick = to_thick(ramp, method, pair_start=1)
    centres = 4 * np.arange(8) + 1.5
    # away from the ends, where the spline's mirrored boundary bends a ramp
    np.testing.assert_allclose(thick[..., 2:-2], np.broadcast_to(centres[2:-2], (3, 4, 4)), atol=1e-4)


def test_weighted_uses_the_paper_kernel_around_the_pair():
    rng = np.random.default_rng(0)
    hr = rng.normal(size=(2, 3, 24))
    for pair_start in (0, 1, 2):
        first = pair_start - 1
        expected = sum(
            w * hr[..., np.clip(4 * np.arange(6) + first + t, 0, 23)]
            for t, w in enumerate((1 / 6, 1 / 3, 1 / 3, 1 / 6))
        )
        np.testing.assert_allclose(to_thick(hr, "weighted", pair_start), expected, atol=1e-6)


def test_bspline_is_scipy_cubic_interpolation_at_the_centres():
    rng = np.random.default_rng(1)
    hr = rng.normal(size=(5, 6, 40))
    grid = np.meshgrid(np.arange(5), np.arange(6), 4 * np.arange(10) + 1.5, indexing="ij")
    expected = ndimage.map_coordinates(hr, grid, order=3, mode="mirror")
    np.testing.assert_allclose(to_thick(hr, "bspline"), expected, atol=1e-5)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("lowlow")
    piece = sitk.RegionOfInterest(bundled_phantom(), (48, 44, 64), (70, 60, 50))
    simulate(piece, "brainweb", root / "case", seed=5)
    return root / "case"


def test_low_to_low_trains_on_thick_patches_and_synthesizes_on_the_thick_grid(case, tmp_path):
    config = load_config(
        None,
        {
            "data": {"train": [str(case)], "val": [str(case)]},
            "model": {"width": 2, "blocks_per_stage": 1},
            "approach": "low-to-low",
            "patch": [24, 24, 8],
            "batch_size": 2,
            "iterations": 2,
            "epoch_patches": 2,
            "val_patches": 2,
            "threads": 1,
            "device": "cpu",
        },
    )
    model = load_checkpoint(train(config, tmp_path / "run"))
    assert model.info.approach == "low-to-low" and model.info.lr_kernel is None
    assert model.info.voxel_size == [1.0, 1.0, 4.0]
    assert model.info.arguments["dilations"][-1] == [4, 4, 1]  # the paper's Low-to-low dilations
    images = [sitk.ReadImage(str(case / f"{name}.nii.gz")) for name in model.info.inputs]
    thick = thick_images(images, "weighted")
    assert same_grid(thick[0], thick_grid(images[0]))
    result = synthesize(model, thick, device="cpu", flip_average=False)
    assert same_grid(result.hr, thick_grid(images[0])) and result.lr is None
