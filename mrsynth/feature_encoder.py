"""The convolutional autoencoder of paper 001 (section 3.1, Fig. 1), our MR feature network.

Encoder: ``depth`` 3x3 convolutions of stride 2, each followed by batch normalisation and
LeakyReLU(0.2); channels start at ``width`` and double per stage up to ``max_width``. Decoder:
transposed 3x3 convolutions of stride 2, each followed by batch normalisation and ReLU, then a 3x3
convolution of stride 1 and a 1x1 convolution pooling across channels, with tanh on the output.
The paper pairs 8 downsampling layers with 7 upsampling ones; here the decoder has as many
upsampling layers as the encoder has downsampling ones, so the reconstruction has the input's size.

Intensities outside are in the project's p99 units (0 = air, 1 = the 99th percentile inside the
body); inside, ``[0, intensity_range]`` is mapped linearly onto tanh's range ``[-1, 1]``, so the
network plugs into the synthesis engine and the feature losses without a separate normalisation.
Inputs whose height or width is not a multiple of ``2**depth`` are padded (edge values) and the
reconstruction cropped back. 5D input ``[B, C, SI, AP, LR]`` (the synthesis engine's layout) is
handled as axial slices: the SI axis is folded into the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import MRSynthError


def stage_widths(width: int, depth: int, max_width: int) -> list[int]:
    """Channels after each encoder stage: ``width`` doubling per stage, capped at ``max_width``."""
    return [min(width * 2**stage, max_width) for stage in range(depth)]


class ConvAutoencoder(nn.Module):
    """2D convolutional autoencoder (paper 001, section 3.1) whose encoder stages serve as features."""

    def __init__(
        self,
        in_channels: int = 1,
        width: int = 16,
        depth: int = 5,
        max_width: int = 128,
        intensity_range: float = 1.25,
    ):
        super().__init__()
        if depth < 1 or width < 1 or max_width < width:
            raise MRSynthError(
                f"ConvAutoencoder needs depth >= 1 and 1 <= width <= max_width, not depth {depth}, width {width}, "
                f"max_width {max_width}"
            )
        if intensity_range <= 0:
            raise MRSynthError(f"intensity_range must be positive, not {intensity_range}")
        widths = stage_widths(width, depth, max_width)
        self.in_channels = in_channels
        self.depth = depth
        self.intensity_range = float(intensity_range)
        self.encoder = nn.ModuleList()
        channels = in_channels
        for out in widths:
            self.encoder.append(
                nn.Sequential(
                    nn.Conv2d(channels, out, 3, stride=2, padding=1),
                    nn.BatchNorm2d(out),
                    nn.LeakyReLU(0.2, inplace=True),
                )
            )
            channels = out
        self.decoder = nn.ModuleList()
        for out in [*reversed(widths[:-1]), width]:
            self.decoder.append(
                nn.Sequential(
                    nn.ConvTranspose2d(channels, out, 3, stride=2, padding=1, output_padding=1),
                    nn.BatchNorm2d(out),
                    nn.ReLU(inplace=True),
                )
            )
            channels = out
        self.head = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.Conv2d(channels, in_channels, 1))

    @property
    def feature_channels(self) -> list[int]:
        """Channels of each encoder stage's feature map."""
        return [stage[0].out_channels for stage in self.encoder]

    def receptive_field(self) -> tuple[int, int, int]:
        """Extent (SI AP LR, voxels) that reaches one output voxel: one axial slice; in-plane, bounded by
        the encoder's 2**(depth+1) - 1 plus as much again for the decoder and the 3x3 head.

        Strided layers make the output depend slightly on where a tile starts (by whole
        ``2**depth`` steps), so full-context tiles match the whole slice closely, not to the last bit.
        """
        extent = 2 * (2 ** (self.depth + 1) - 1) + 3
        return (1, extent, extent)

    def to_internal(self, x: torch.Tensor) -> torch.Tensor:
        """p99 units -> tanh range: ``[0, intensity_range]`` onto ``[-1, 1]`` (not clipped)."""
        return x * (2.0 / self.intensity_range) - 1.0

    def from_internal(self, y: torch.Tensor) -> torch.Tensor:
        return (y + 1.0) * (self.intensity_range / 2.0)

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        multiple = 2**self.depth
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % multiple, -width % multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return x, (height, width)

    def encode(self, x: torch.Tensor, stages: int | None = None) -> list[torch.Tensor]:
        """Feature maps of the first ``stages`` encoder stages (all by default) for 2D input in p99 units."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise MRSynthError(f"the encoder takes [B, {self.in_channels}, H, W] images, not {list(x.shape)}")
        features = []
        h = self._pad(self.to_internal(x))[0]
        for stage in self.encoder[: self.depth if stages is None else stages]:
            h = stage(h)
            features.append(h)
        return features

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The autoencoder's output for 2D input, in tanh's range (what training compares)."""
        height, width = x.shape[-2:]
        h = self.encode(x)[-1]
        for stage in self.decoder:
            h = stage(h)
        return torch.tanh(self.head(h))[..., :height, :width]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction in p99 units; 2D ``[B, C, H, W]`` or 5D ``[B, C, SI, AP, LR]`` (axial slices)."""
        if x.dim() == 5:
            batch, channels, slices, ap, lr = x.shape
            flat = x.permute(0, 2, 1, 3, 4).reshape(batch * slices, channels, ap, lr)
            out = self.forward(flat)
            return out.reshape(batch, slices, channels, ap, lr).permute(0, 2, 1, 3, 4)
        return self.from_internal(self.reconstruct(x))
