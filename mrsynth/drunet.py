"""DRUNet, the double ResNet-U-Net of paper 004 (Fig. 3 and 4, Table 1), and its slice-wise 3D wrapper.

Encoder: a 7x7 stride-2 stem (DOWN 1), then four ResNet stages (DOWN 2-4, D-CENTER) each opened by a
down-block (3x3 stride-2 convolution, 1x1 stride-2 projection shortcut): basic blocks for DRUNet-34
(3, 4, 6, 3 blocks), bottlenecks for DRUNet-50 (3, 4, 6, 3) and DRUNet-101 (3, 4, 23, 3). Decoder:
the mirror (U-CENTER, UP 1-4), each stage opened by an up-block (nearest-neighbour upsampling x2,
then the block; 1x1 convolution on the upsampled shortcut) whose output is concatenated with the
encoder's same-scale features and fused by a "cate" block (1x1 projection shortcut halving the
channels). ``width`` is the stem's channel count (64 in 004; smaller so CPU training fits).

Sizes: the network halves the image five times, so each in-plane axis is padded at its end
(replicated edge) to a multiple of 32 and the output cropped back: any size works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .ct import DEFAULT_WINDOWS, window
from .errors import MRSynthError

DEPTHS = {34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3))}
MULTIPLE = 32
_SLICE_CHUNK = 16


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(out_ch)
    )


class ResBlock(nn.Module):
    """Basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 at a quarter width) residual block.

    ``resample``: "down" (stride 2, Fig. 3A/B), "up" (nearest-neighbour x2 first, Fig. 3E/F) or None.
    """

    def __init__(self, kind: str, in_ch: int, out_ch: int, resample: str | None = None):
        super().__init__()
        stride = 2 if resample == "down" else 1
        if kind == "basic":
            self.body = nn.Sequential(
                _conv_bn(in_ch, out_ch, 3, stride), nn.ReLU(inplace=True), _conv_bn(out_ch, out_ch, 3)
            )
        else:
            mid = max(1, out_ch // 4)
            self.body = nn.Sequential(
                _conv_bn(in_ch, mid, 1),
                nn.ReLU(inplace=True),
                _conv_bn(mid, mid, 3, stride),
                nn.ReLU(inplace=True),
                _conv_bn(mid, out_ch, 1),
            )
        self.shortcut = nn.Identity() if in_ch == out_ch and resample is None else _conv_bn(in_ch, out_ch, 1, stride)
        self.up = resample == "up"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.body(x) + self.shortcut(x))


class DRUNet(nn.Module):
    """2D DRUNet-34/50/101 on [B, C, H, W] slices; one output channel per target."""

    def __init__(self, depth: int = 34, in_channels: int = 1, out_channels: int = 1, width: int = 64):
        super().__init__()
        if depth not in DEPTHS:
            raise MRSynthError(f"DRUNet depth {depth} does not exist: use 34, 50 or 101")
        if width < 4:
            raise MRSynthError(f"DRUNet width {width} is too small: use 4 or more (004 uses 64)")
        kind, counts = DEPTHS[depth]
        expansion = 1 if kind == "basic" else 4
        channels = [width * 2**i * expansion for i in range(4)]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.down = nn.ModuleList()
        previous = width
        for out_ch, count in zip(channels, counts, strict=True):
            blocks = [ResBlock(kind, previous, out_ch, "down")]
            blocks += [ResBlock(kind, out_ch, out_ch) for _ in range(count - 1)]
            self.down.append(nn.Sequential(*blocks))
            previous = out_ch
        skips = [width, *channels[:-1]]  # the encoder's features at each decoder scale, finest first
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for skip, count in zip(reversed(skips), counts[::-1], strict=True):
            self.up.append(ResBlock(kind, previous, skip, "up"))
            blocks = [ResBlock(kind, 2 * skip, skip)]  # the cate-block: concatenation halved by its shortcut
            blocks += [ResBlock(kind, skip, skip) for _ in range(count - 1)]
            self.fuse.append(nn.Sequential(*blocks))
            previous = skip
        self.head = nn.Sequential(
            nn.Upsample(scale_factor=2.0, mode="nearest"),
            nn.Conv2d(previous, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, out_channels, 1),
        )
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad = (0, (-width) % MULTIPLE, 0, (-height) % MULTIPLE)
        h = F.pad(x, pad, mode="replicate") if any(pad) else x
        features = [self.stem(h)]
        for stage in self.down:
            features.append(stage(features[-1]))
        h = features.pop()
        for up, fuse in zip(self.up, self.fuse, strict=True):
            h = fuse(torch.cat([up(h), features.pop()], dim=1))
        return self.head(h)[..., :height, :width]


class DRUNetSlices(nn.Module):
    """DRUNet applied to the axial slices of [B, 1, SI, AP, LR] CT volumes in Hounsfield units.

    Each window of ``windows`` ((level, width) pairs in HU) becomes a channel (``ct.window``); with
    ``context`` k > 0 (2.5D) the k neighbouring slices on each side (SI axis, edge slices repeated at
    the ends) are channels too. Slices are folded into the batch, so the engine's 3D calls work.
    It reports no receptive field: full-context tiles could cut slices, so the engine must use sliding
    windows whose patch spans whole slices (the registry's ``patch``, e.g. 32 x 256 x 256 at 1 mm).
    ``output`` "linear" returns the network's output; "sigmoid" returns ``output_scale`` x sigmoid
    (the BCE-trained variant, whose targets are intensities divided by ``output_scale``).
    """

    def __init__(
        self,
        depth: int = 34,
        width: int = 16,
        context: int = 0,
        windows: Sequence[Sequence[float]] = DEFAULT_WINDOWS,
        output: str = "linear",
        output_scale: float = 1.0,
    ):
        super().__init__()
        if context < 0:
            raise MRSynthError(f"slice context {context} is negative: use 0 (2D) or more (2.5D)")
        if output not in ("linear", "sigmoid"):
            raise MRSynthError(f"output {output!r} is unknown: use linear or sigmoid")
        self.windows = [(float(level), float(w)) for level, w in windows]
        if not self.windows:
            raise MRSynthError("give at least one CT window (level, width)")
        self.context = context
        self.output = output
        self.output_scale = float(output_scale)
        self.net = DRUNet(depth, len(self.windows) * (2 * context + 1), 1, width)

    def slice_channels(self, volume: torch.Tensor) -> torch.Tensor:
        """[B, 1, SI, AP, LR] HU -> [B * SI, windows * (2k + 1), AP, LR] windowed slices with neighbours."""
        if volume.dim() != 5 or volume.shape[1] != 1:
            raise MRSynthError(f"DRUNetSlices takes [B, 1, SI, AP, LR] CT volumes, not {list(volume.shape)}")
        batch, _, slices, ap, lr = volume.shape
        windowed = torch.cat([window(volume, level, w) for level, w in self.windows], dim=1)  # [B, W, SI, AP, LR]
        k = self.context
        if k:
            padded = torch.cat([windowed[:, :, :1].expand(-1, -1, k, -1, -1), windowed], dim=2)
            padded = torch.cat([padded, windowed[:, :, -1:].expand(-1, -1, k, -1, -1)], dim=2)
            windowed = torch.cat([padded[:, :, i : i + slices] for i in range(2 * k + 1)], dim=1)
        return windowed.permute(0, 2, 1, 3, 4).reshape(batch * slices, -1, ap, lr)

    def finish(self, raw: torch.Tensor) -> torch.Tensor:
        """The network's raw slice output in output units (identity, or scaled sigmoid)."""
        return raw if self.output == "linear" else self.output_scale * torch.sigmoid(raw)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        batch, _, slices, ap, lr = volume.shape
        planes = self.slice_channels(volume.contiguous())
        if torch.is_grad_enabled():
            raw = self.net(planes)
        else:  # inference: bound memory by running a few slices at a time
            raw = torch.cat([self.net(chunk) for chunk in planes.split(_SLICE_CHUNK)])
        out = self.finish(raw)
        return out.reshape(batch, slices, 1, ap, lr).permute(0, 2, 1, 3, 4)
