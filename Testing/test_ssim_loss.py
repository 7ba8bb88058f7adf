"""The differentiable SSIM loss: scikit-image's Gaussian SSIM on known cases, gradients, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from mrsynth.errors import MRSynthError
from mrsynth.ssim_loss import ssim_loss


def _batch(array: np.ndarray) -> torch.Tensor:
    return torch.tensor(array, dtype=torch.float64)[None, None]


def _skimage(prediction: np.ndarray, target: np.ndarray) -> float:
    return structural_similarity(
        prediction, target, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )


@pytest.mark.parametrize("shape", [(40, 50), (20, 30, 25)])
def test_ssim_loss_is_one_minus_scikit_images_gaussian_ssim(shape):
    rng = np.random.default_rng(0)
    target = rng.random(shape)
    for prediction in (target + 0.2 * rng.random(shape), target**2, 1.0 - target):
        loss = ssim_loss(_batch(prediction), _batch(target)).item()
        assert loss == pytest.approx(1.0 - _skimage(prediction, target), abs=1e-9)


def test_ssim_loss_is_zero_for_identical_images_and_its_gradient_sharpens_a_blur():
    rng = np.random.default_rng(1)
    target = _batch(rng.random((1, 32, 32)))[:, :, 0].float()
    assert ssim_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
    blurred = torch.nn.functional.avg_pool2d(target, 3, stride=1, padding=1, count_include_pad=False)
    prediction = blurred.clone().requires_grad_(True)
    before = ssim_loss(prediction, target)
    before.backward()
    with torch.no_grad():
        after = ssim_loss(prediction - 0.5 * prediction.grad / prediction.grad.abs().max(), target)
    assert after.item() < before.item()


def test_a_single_slice_stored_as_depth_one_is_scored_in_2d():
    rng = np.random.default_rng(2)
    a, b = rng.random((24, 24)), rng.random((24, 24))
    as_3d = ssim_loss(_batch(a[None]), _batch(b[None])).item()
    assert as_3d == pytest.approx(ssim_loss(_batch(a), _batch(b)).item())


def test_ssim_loss_refuses_mismatched_or_too_small_inputs():
    with pytest.raises(MRSynthError, match="differ"):
        ssim_loss(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 17))
    with pytest.raises(MRSynthError, match="window"):
        ssim_loss(torch.zeros(1, 1, 8, 16), torch.zeros(1, 1, 8, 16))
