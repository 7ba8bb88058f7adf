"""The structural consistency loss of paper 000 (section II.E.2, eq. 1-2): MIND on Sobel features.

MIND (Heinrich et al., 2012) describes each voxel by how similar the 3x3x3 patch around it is to the
patches around its six neighbours: D_r(x) = mean over the patch of (I(x+p) - I(x+r+p))^2 for each
neighbour offset r, V(x) = the mean of D_r over the six r (a local variance estimate), and
MIND_r(x) = exp(-D_r(x) / V(x)), divided by its maximum over r. Because D and V scale alike, the
descriptor does not change when an image is multiplied by a positive factor or shifted, which is
why it can compare a synthetic TSE with a GE of different contrast.

The paper computes MIND not on the images but on their 3D Sobel features (C = 3 channels), so the
map has 6C channels, and takes the mean squared difference of the two maps. No library offers this
(MONAI's losses have no MIND), so it is written here. Anisotropic voxels are respected by giving the
Sobel derivatives in intensity per millimetre: each axis's difference is divided by its spacing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

_NEIGHBOURS = ((-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1))
_RELATIVE_EPS = 1e-3  # keeps V > 0 in flat regions, relative so that scaling the image changes nothing


def sobel_kernels(spacing: Sequence[float] = (1.0, 1.0, 1.0), dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The three 3x3x3 Sobel kernels [3, 1, 3, 3, 3]: central difference along one axis per mm,
    [1, 2, 1] smoothing (normalised) along the other two."""
    diff = torch.tensor([-1.0, 0.0, 1.0], dtype=dtype)
    smooth = torch.tensor([1.0, 2.0, 1.0], dtype=dtype) / 4
    kernels = []
    for axis in range(3):
        profiles = [diff / (2 * float(spacing[axis])) if a == axis else smooth for a in range(3)]
        kernels.append(torch.einsum("i,j,k->ijk", *profiles))
    return torch.stack(kernels)[:, None]


def sobel(x: torch.Tensor, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> torch.Tensor:
    """3D Sobel features of ``x`` [B, C, D, H, W] -> [B, 3C, D, H, W] (three derivatives per channel)."""
    batch, channels = x.shape[:2]
    kernels = sobel_kernels(spacing, x.dtype).to(x.device)
    padded = F.pad(x.reshape(batch * channels, 1, *x.shape[2:]), (1,) * 6, mode="replicate")
    return F.conv3d(padded, kernels).reshape(batch, 3 * channels, *x.shape[2:])


def _shift(x: torch.Tensor, offset: Sequence[int]) -> torch.Tensor:
    """x(v + offset), with the border replicated."""
    padded = F.pad(x, (1,) * 6, mode="replicate")
    d, h, w = x.shape[2:]
    a, b, c = (1 + o for o in offset)
    return padded[:, :, a : a + d, b : b + h, c : c + w]


def mind(x: torch.Tensor, patch: int = 3) -> torch.Tensor:
    """MIND descriptors of ``x`` [B, C, D, H, W] over the six-neighbourhood -> [B, 6C, D, H, W]."""
    distances = []
    for offset in _NEIGHBOURS:
        squared = (x - _shift(x, offset)) ** 2
        padded = F.pad(squared, (patch // 2,) * 6, mode="replicate")
        distances.append(F.avg_pool3d(padded, patch, stride=1))
    d = torch.stack(distances, dim=2)  # [B, C, 6, D, H, W]
    v = d.mean(dim=2, keepdim=True)
    v = v + _RELATIVE_EPS * v.mean(dim=(1, 3, 4, 5), keepdim=True) + torch.finfo(x.dtype).tiny
    descriptor = torch.exp(-d / v)
    descriptor = descriptor / descriptor.amax(dim=2, keepdim=True)
    return descriptor.reshape(x.shape[0], 6 * x.shape[1], *x.shape[2:])


def mind_loss(
    prediction: torch.Tensor, guide: torch.Tensor, spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> torch.Tensor:
    """Eq. 1: mean squared difference of the MIND maps of the Sobel features of two [B, C, ...] tensors."""
    return F.mse_loss(mind(sobel(prediction, spacing)), mind(sobel(guide, spacing)))
