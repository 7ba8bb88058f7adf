"""A differentiable SSIM loss (Wang et al. 2004) for training on 2D slices or 3D patches.

``metrics.ssim`` scores volumes in numpy with the paper's box window; a training loss needs the same
quantity in torch, with gradients, on batches. The window here is the usual Gaussian (sigma 1.5,
11 taps: Wang et al.'s choice, and the one of the SSIM + L1 losses of Zhao et al. 2017), applied
separably, so it costs two or three 1D convolutions per moment. It is written here rather than taken
from MONAI because MONAI is not a run-time dependency and the loss is a dozen lines; its value is
checked against scikit-image's ``structural_similarity`` in the tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import MRSynthError

K1, K2 = 0.01, 0.03


def _gaussian_taps(sigma: float, size: int, like: torch.Tensor) -> torch.Tensor:
    offsets = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return taps / taps.sum()


def _smooth(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian mean over every spatial axis of ``[B, C, ...]``; 'valid' windows only."""
    spatial = x.dim() - 2
    conv = F.conv2d if spatial == 2 else F.conv3d
    channels = x.shape[1]
    for axis in range(spatial):
        shape = [1] * spatial
        shape[axis] = taps.numel()
        kernel = taps.reshape(1, 1, *shape).expand(channels, 1, *shape)
        x = conv(x, kernel, groups=channels)
    return x


def ssim_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    sigma: float = 1.5,
    size: int = 11,
) -> torch.Tensor:
    """``1 - mean SSIM`` of two ``[B, C, H, W]`` or ``[B, C, D, H, W]`` tensors (Gaussian window, K1 0.01, K2 0.03).

    ``data_range`` sets SSIM's stabilising constants, (K * data_range)^2: give the targets' intensity
    range (1 for images in the project's p99 units). Windows are taken where they fit inside the
    tensor (no padding), so a border of ``size // 2`` contributes to the mean only through its
    neighbours. A 3D tensor of depth 1 (a 2D slice in the project's [B, C, 1, H, W] layout) is scored
    in 2D; any other axis shorter than ``size`` is refused.
    """
    if prediction.shape != target.shape:
        raise MRSynthError(f"SSIM loss: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ")
    if prediction.dim() == 5 and prediction.shape[2] == 1:
        prediction, target = prediction[:, :, 0], target[:, :, 0]
    if prediction.dim() not in (4, 5):
        raise MRSynthError(f"SSIM loss takes [B, C, H, W] or [B, C, D, H, W] tensors, not {tuple(prediction.shape)}")
    if min(prediction.shape[2:]) < size:
        raise MRSynthError(f"SSIM loss: patches {tuple(prediction.shape[2:])} are smaller than its {size}-voxel window")
    taps = _gaussian_taps(sigma, size, prediction)
    mu_x, mu_y = _smooth(prediction, taps), _smooth(target, taps)
    var_x = _smooth(prediction * prediction, taps) - mu_x**2
    var_y = _smooth(target * target, taps) - mu_y**2
    cov = _smooth(prediction * target, taps) - mu_x * mu_y
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    ssim = (2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return 1.0 - ssim.mean()
