"""U-Net and U-Net+BN, the baselines of paper 000 (section II.C.1).

A standard 3D U-Net: at each level two 3x3x3 convolutions with ReLU (and, for U-Net+BN, batch
normalisation after each convolution), 2x2x2 max pooling on the way down, 2x2x2 transposed
convolutions and skip concatenations on the way up, a linear 1x1x1 head. Channels double per
level. Every spatial size must be divisible by 2**(levels - 1), the pooling constraint that made the
paper choose 56x56x8 patches for the Low-to-low approach.
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import MRSynthError


def _double_conv(in_channels: int, out_channels: int, batch_norm: bool, padding: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for channels in (in_channels, out_channels):
        layers.append(nn.Conv3d(channels, out_channels, 3, padding=1, padding_mode=padding, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm3d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """3D U-Net with ``levels`` resolution levels (``levels - 1`` poolings) and ``width`` channels at the top."""

    def __init__(
        self,
        in_channels: int = 2,
        out_channels: int = 1,
        width: int = 16,
        levels: int = 4,
        batch_norm: bool = False,
        padding: str = "reflect",
    ):
        super().__init__()
        if padding not in ("reflect", "zeros"):
            raise MRSynthError(f"unknown padding {padding!r}: use 'reflect' or 'zeros'")
        if levels < 1:
            raise MRSynthError(f"a U-Net needs at least one level, not {levels}")
        widths = [width * 2**level for level in range(levels)]
        self.levels, self.padding = levels, padding
        self.down = nn.ModuleList()
        channels = in_channels
        for w in widths:
            self.down.append(_double_conv(channels, w, batch_norm, padding))
            channels = w
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.upsample.append(nn.ConvTranspose3d(channels, w, 2, stride=2))
            self.up.append(_double_conv(2 * w, w, batch_norm, padding))
            channels = w
        self.head = nn.Conv3d(channels, out_channels, 1)

    @property
    def size_multiple(self) -> int:
        """Every spatial size of the input must be a multiple of this."""
        return 2 ** (self.levels - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        multiple = self.size_multiple
        if any(size % multiple for size in x.shape[2:]):
            raise MRSynthError(
                f"a {self.levels}-level U-Net needs sizes divisible by {multiple}, got {tuple(x.shape[2:])}: "
                f"use a patch whose sizes are multiples of {multiple}, and sliding windows (--preset paper)"
            )
        if self.padding == "reflect" and min(x.shape[2:]) // multiple < 2:
            raise MRSynthError(
                f"reflection padding needs at least 2 voxels at the coarsest level, but {tuple(x.shape[2:])} gives "
                f"{tuple(s // multiple for s in x.shape[2:])}: use padding zeros, fewer levels or a larger patch"
            )
        skips = []
        for level, block in enumerate(self.down):
            if level:
                x = nn.functional.max_pool3d(x, 2)
            x = block(x)
            skips.append(x)
        for upsample, block, skip in zip(self.upsample, self.up, reversed(skips[:-1]), strict=True):
            x = block(torch.cat([skip, upsample(x)], dim=1))
        return self.head(x)
