"""Param-Net (paper 001, section 3.2): re-parameterisation of an MR image on acquisition parameters.

2D, on axial slices, as in the paper. An encoder of ``levels`` strided 3x3 convolutions, each with
batch normalisation and LeakyReLU 0.2 (the autoencoder's encoder of section 3.1), gives the image
features; ``levels`` coarse-to-fine blocks rebuild the image: a 3x3 stride-2 transposed
convolution, the encoder features of that resolution stacked on (the input image itself at full
resolution), a 3x3 convolution, then the conditioning values stacked on as constant channels (in
*every* block, so that late blocks still see them), then two 3x3 convolutions, each convolution
followed by normalisation and LeakyReLU 0.2; two 3x3 convolutions finish.

Departures from the paper, each for a reason: the encoder is trained with the blocks instead of
frozen after a separate autoencoder training (no pretrained encoder exists here, and one run on a
CPU must do); the blocks use batch normalisation instead of instance normalisation, because
training runs on crops and inference on whole slices, and instance statistics differ between the
two while batch statistics in evaluation mode do not; the output is linear instead of tanh,
because the target is in units of its 99th percentile inside the head and exceeds 1 at its brightest.

Our addition, off by default: ``input_skip`` adds the input itself to the output, times a gain that a
small perceptron computes from the conditioning values (zero at the start, so a network given the
skip starts as the network it came from). Next to the input's own setting the target is nearly the
input rescaled, which the plain network must rebuild through its whole encoder and decoder, noise and
all; with the skip it can learn the gain instead, and elsewhere let it fall to zero.

Our addition: ``ChainedParamNet`` is Param-to-Param in two stages through one fixed setting: a
Param-to-Param network trained to that single output setting (``target_setting``), then a
Default-to-Param network whose input is acquired at it; or the mean of several such second stages
behind one first stage (the first then runs once, not once per chain as in an ensemble of chains).

``BoundParamNet`` binds the conditioning values and runs the 2D network slice by slice on the
engine's ``[B, C, SI, AP, LR]`` tensors, so ``mrsynth synthesize`` uses it like any 3D network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional

from .errors import MRSynthError

_SLOPE = 0.2


def _conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(_SLOPE, inplace=True),
    )


class ParamBlock(nn.Module):
    """Upsample, stack the skip features, convolve, stack the conditions, convolve twice."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, conditions: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)
        self.merge = _conv(out_channels + skip_channels, out_channels)
        self.refine = nn.Sequential(_conv(out_channels + conditions, out_channels), _conv(out_channels, out_channels))

    def forward(self, x: torch.Tensor, skip: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        x = self.merge(torch.cat([self.up(x), skip], 1))
        planes = conditions[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return self.refine(torch.cat([x, planes.to(x.dtype)], 1))


class ParamNet(nn.Module):
    """Encoder + coarse-to-fine blocks conditioned on ``conditions`` scaled acquisition parameters."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        conditions: int = 2,
        width: int = 16,
        levels: int = 4,
        max_width: int = 64,
        input_skip: bool = False,
    ):
        super().__init__()
        if levels < 1 or width < 1 or conditions < 1:
            raise MRSynthError(
                f"ParamNet needs levels, width and conditions of at least 1, not {levels}, {width}, {conditions}"
            )
        if input_skip and in_channels != out_channels:
            raise MRSynthError(
                f"input_skip adds the input to the output: it needs as many input as output channels, not "
                f"{in_channels} and {out_channels}"
            )
        widths = [min(max_width, width * 2**level) for level in range(levels)]
        self.levels, self.conditions = levels, conditions
        self.encoder = nn.ModuleList()
        channels = in_channels
        for w in widths:
            self.encoder.append(
                nn.Sequential(
                    nn.Conv2d(channels, w, 3, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(w),
                    nn.LeakyReLU(_SLOPE, inplace=True),
                )
            )
            channels = w
        skips = [in_channels, *widths[:-1]]  # features at each resolution, finest first
        self.blocks = nn.ModuleList()
        for w, skip in zip(reversed(widths), reversed(skips), strict=True):
            self.blocks.append(ParamBlock(channels, skip, w, conditions))
            channels = w
        self.head = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(_SLOPE, inplace=True),
            nn.Conv2d(channels, out_channels, 3, padding=1),
        )
        self.skip = None
        if input_skip:  # the input's gain per output channel, a function of the conditions; zero at the start
            self.skip = nn.Sequential(nn.Linear(conditions, 16), nn.LeakyReLU(_SLOPE), nn.Linear(16, out_channels))
            nn.init.zeros_(self.skip[-1].weight)
            nn.init.zeros_(self.skip[-1].bias)

    @property
    def size_multiple(self) -> int:
        return 2**self.levels

    def receptive_field_2d(self) -> int:
        """An upper bound on the in-plane receptive field in pixels (the path through the coarsest level)."""
        field, jump = 1, 1
        for _ in range(self.levels):
            field += 2 * jump
            jump *= 2
        for _ in range(self.levels):
            field += 2 * jump  # transposed convolution, counted at its input's resolution
            jump //= 2
            field += 3 * 2 * jump
        return field + 2 * 2

    def forward(self, x: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """``x`` [B, C, H, W] (H, W multiples of ``size_multiple``), ``conditions`` [B, P] scaled to [0, 1]."""
        if conditions.shape != (x.shape[0], self.conditions):
            raise MRSynthError(
                f"ParamNet takes {self.conditions} conditioning values per image, got shape {tuple(conditions.shape)}"
            )
        if any(size % self.size_multiple for size in x.shape[2:]):
            raise MRSynthError(
                f"ParamNet needs slice sizes divisible by {self.size_multiple}, got {tuple(x.shape[2:])}"
            )
        features = [x]
        for layer in self.encoder:
            features.append(layer(features[-1]))
        y = features.pop()
        for block in self.blocks:
            y = block(y, features.pop(), conditions)
        out = self.head(y)
        if self.skip is not None:
            out = out + self.skip(conditions.to(out.dtype))[:, :, None, None] * x
        return out


class ChainedParamNet(nn.Module):
    """Param-to-Param through Default-to-Param's input setting: ``first``, then ``second``.

    Why: paper 001 finds Default-to-Param (one fixed input setting) better than Param-to-Param, and
    here the Param-to-Param networks stayed below rescaling next to the input's own setting while
    Default-to-Param beat it everywhere (docs/other-systems.md). So ``first`` (a Param-to-Param
    network trained with a fixed ``target_setting``) maps the input at its own TR/TE to the image at
    ``via``, and ``second`` (a Default-to-Param network whose input was acquired at ``via``) maps that
    to the target TR/TE. Conditions are Param-to-Param's four (input_TR, input_TE, TR, TE), scaled;
    ``via`` is the fixed setting's two, scaled the same way. Both stages' outputs are in units of their
    own 99th percentile, which is how ``second`` expects its input. ``second`` may be a list of
    Default-to-Param networks' arguments: the second stage is then the mean of their outputs
    (``networks.Ensemble``).
    """

    def __init__(self, first: dict, second: dict | list[dict], via: Sequence[float]):
        super().__init__()
        self.first = ParamNet(**first)
        if isinstance(second, dict):
            self.second: nn.Module = ParamNet(**second)
        else:
            from .networks import Ensemble  # (networks imports this module)

            self.second = Ensemble([{"architecture": "ParamNet", "arguments": arguments} for arguments in second])
        if self.first.conditions != 4 or self.second.conditions != 2 or len(via) != 2:
            raise MRSynthError(
                "ChainedParamNet takes a Param-to-Param first stage (4 conditions), a Default-to-Param second stage "
                f"(2 conditions) and the 2 scaled values of the setting between them; got {self.first.conditions}, "
                f"{self.second.conditions} and {len(via)}"
            )
        self.register_buffer("via", torch.tensor([float(v) for v in via], dtype=torch.float32), persistent=False)
        self.conditions = 4

    @property
    def size_multiple(self) -> int:
        return max(self.first.size_multiple, self.second.size_multiple)

    def receptive_field_2d(self) -> int:
        return self.first.receptive_field_2d() + self.second.receptive_field_2d() - 1

    def forward(self, x: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """``conditions`` [B, 4]: the input's scaled TR, TE, then the output's."""
        if conditions.shape != (x.shape[0], self.conditions):
            raise MRSynthError(
                f"ChainedParamNet takes 4 conditioning values per image, got shape {tuple(conditions.shape)}"
            )
        via = self.via.to(conditions.dtype).expand(x.shape[0], -1)
        middle = self.first(x, torch.cat([conditions[:, :2], via], 1))
        return self.second(middle, conditions[:, 2:])


class BoundParamNet(nn.Module):
    """A ParamNet with its conditioning values fixed, run on ``[B, C, SI, AP, LR]`` axial slice by slice.

    Each slice is zero-padded at its end to the network's size multiple (zero is the background of
    normalised images) and cropped back; slices run ``chunk`` at a time to bound memory.
    """

    def __init__(self, network: ParamNet, conditions: Sequence[float], chunk: int = 16):
        super().__init__()
        self.network = network
        self.register_buffer("values", torch.tensor([float(v) for v in conditions], dtype=torch.float32))
        if self.values.numel() != network.conditions:
            raise MRSynthError(f"the model takes {network.conditions} conditioning values, {self.values.numel()} given")
        self.chunk = chunk

    def receptive_field(self) -> tuple[int, int, int]:
        """SI: 1 (slices are independent); AP, LR: the 2D network's bound."""
        field = self.network.receptive_field_2d()
        return (1, field, field)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, si, ap, lr = x.shape
        slices = x.permute(0, 2, 1, 3, 4).reshape(batch * si, channels, ap, lr)
        multiple = self.network.size_multiple
        slices = functional.pad(slices, (0, (-lr) % multiple, 0, (-ap) % multiple))
        outputs = []
        for start in range(0, slices.shape[0], self.chunk):
            part = slices[start : start + self.chunk]
            outputs.append(self.network(part, self.values.to(part.dtype).expand(part.shape[0], -1)))
        out = torch.cat(outputs)[:, :, :ap, :lr]
        return out.reshape(batch, si, -1, ap, lr).permute(0, 2, 1, 3, 4)
