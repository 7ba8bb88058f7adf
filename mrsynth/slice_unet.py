"""A 2D U-Net applied slice by slice to volumes (MRI2MRI, paper 002, maps 2D slices).

The inference engine feeds volumes ``[B, C, SI, AP, LR]``; the network folds SI into the batch and
runs a 2D U-Net on each axial (AP x LR) slice, so each output slice depends on its own input slice
only. Axial sizes that are not multiples of ``2 ** (levels - 1)`` are reflect-padded and the output
cropped back, so any volume fits. The receptive field reported to the engine is 1 voxel along SI
(tiles are cut there without halo) and the whole padded plane in-plane.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import MRSynthError


def _double_conv(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for channels in (in_channels, out_channels):
        layers.append(nn.Conv2d(channels, out_channels, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SliceUNet(nn.Module):
    """2D U-Net (two 3x3 convolutions per level, max pooling, transposed convolutions, skips) per axial slice."""

    def __init__(
        self, in_channels: int = 1, out_channels: int = 1, width: int = 16, levels: int = 4, batch_norm: bool = True
    ):
        super().__init__()
        if levels < 1 or width < 1:
            raise MRSynthError(f"SliceUNet needs levels >= 1 and width >= 1, not levels {levels}, width {width}")
        widths = [width * 2**level for level in range(levels)]
        self.levels = levels
        self.down = nn.ModuleList()
        channels = in_channels
        for w in widths:
            self.down.append(_double_conv(channels, w, batch_norm))
            channels = w
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.upsample.append(nn.ConvTranspose2d(channels, w, 2, stride=2))
            self.up.append(_double_conv(2 * w, w, batch_norm))
            channels = w
        self.head = nn.Conv2d(channels, out_channels, 1)

    @property
    def size_multiple(self) -> int:
        return 2 ** (self.levels - 1)

    def receptive_field(self) -> tuple[int, int, int]:
        """(SI, AP, LR): slices are independent; in-plane each level's two convolutions see 2 * 2**level more."""
        down = sum(4 * 2**level for level in range(self.levels))
        in_plane = 1 + down + sum(4 * 2**level for level in range(self.levels - 1))
        return (1, in_plane, in_plane)

    def forward_2d(self, x: torch.Tensor) -> torch.Tensor:
        """Run on slices ``[N, C, H, W]`` of any size (reflect-padded to the pooling multiple, cropped back)."""
        height, width = x.shape[-2:]
        multiple = self.size_multiple
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        # Reflection needs the pad to be shorter than the side; sides of 1 or 2 voxels fall back to replication.
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        h = F.pad(x, (0, pad_w, 0, pad_h), mode=mode) if pad_h or pad_w else x
        skips = []
        for level, block in enumerate(self.down):
            if level:
                h = F.max_pool2d(h, 2)
            h = block(h)
            skips.append(h)
        for upsample, block, skip in zip(self.upsample, self.up, reversed(skips[:-1]), strict=True):
            h = block(torch.cat([upsample(h), skip], dim=1))
        return self.head(h)[..., :height, :width]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, SI, AP, LR]`` volumes (or ``[N, C, H, W]`` slices) to the same layout with the output channels."""
        if x.dim() == 4:
            return self.forward_2d(x)
        if x.dim() != 5:
            raise MRSynthError(f"SliceUNet takes [B, C, SI, AP, LR] or [N, C, H, W] tensors, not {list(x.shape)}")
        batch, channels, depth, height, width = x.shape
        slices = x.permute(0, 2, 1, 3, 4).reshape(batch * depth, channels, height, width)
        out = self.forward_2d(slices)
        return out.reshape(batch, depth, -1, height, width).permute(0, 2, 1, 3, 4)
