"""Networks, built from plain arguments so a checkpoint can rebuild them.

HighResNet as modified in paper 000 (section II.C.2, Fig. 1): no convolution before the residual
blocks (the GE reaches the output through projection shortcuts unhindered), pre-activation
BN-ReLU-conv blocks, 1x1x1 projection shortcuts where the channel count changes, channels doubling
at each dilation change, per-axis dilations chosen to make kernels as isotropic as possible on the
input's voxel size, reflection padding, and a linear 1x1x1 output head.

Our addition, off by default: ``pointwise_width`` > 0 adds a per-voxel branch (1x1x1 convolutions
with ReLU) from the inputs to the output. A strongly nonlinear target such as a T2w TSE from T1-like GE
echoes is mostly a function of each voxel's two echo values, which such a branch learns in minutes;
the dilated residual blocks then only add what context brings (denoising, edges).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .drunet import DRUNetSlices
from .errors import MRSynthError
from .feature_encoder import ConvAutoencoder
from .paramnet import ChainedParamNet, ParamNet
from .slice_unet import SliceUNet
from .tissue_maps import MapParamNet
from .unet import UNet

Triple = tuple[int, int, int]


def isotropic_dilations(spacing: Sequence[float], nominal: Sequence[int] = (1, 2, 4)) -> list[Triple]:
    """Per-axis dilation for each nominal dilation, making each kernel's extent in mm as even as possible.

    On the paper's 0.488 x 0.488 x 0.825 mm grid nominal 4 gives (4, 4, 2); on 0.488 x 0.488 x 3.3 mm
    it gives (4, 4, 1), the two examples in section II.C.2.
    """
    finest = min(spacing)
    return [tuple(max(1, round(d * finest / s)) for s in spacing) for d in nominal]  # type: ignore[misc]


def pointwise_mlp(in_channels: int, width: int, out_channels: int) -> nn.Sequential:
    """Two hidden layers of ``width`` 1x1x1 convolutions with ReLU: a learned per-voxel intensity map."""
    return nn.Sequential(
        nn.Conv3d(in_channels, width, 1),
        nn.ReLU(inplace=True),
        nn.Conv3d(width, width, 1),
        nn.ReLU(inplace=True),
        nn.Conv3d(width, out_channels, 1),
    )


class PreActBlock(nn.Module):
    """BN-ReLU-conv, twice, plus a shortcut (identity, or 1x1x1 projection when channels change)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: Triple, padding_mode: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm3d(in_channels),
            nn.ReLU(inplace=False),
            nn.Conv3d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, padding_mode=padding_mode),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, padding=dilation, dilation=dilation, padding_mode=padding_mode),
        )
        self.shortcut = (
            nn.Identity() if in_channels == out_channels else nn.Conv3d(in_channels, out_channels, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.body(x)


class HighResNet(nn.Module):
    """Dilated residual network without downsampling (paper 000, Fig. 1)."""

    def __init__(
        self,
        in_channels: int = 2,
        out_channels: int = 1,
        width: int = 16,
        blocks_per_stage: int = 3,
        dilations: Sequence[Sequence[int]] = ((1, 1, 1), (2, 2, 2), (4, 4, 4)),
        padding: str = "reflect",
        pointwise_width: int = 0,
    ):
        super().__init__()
        if padding not in ("reflect", "zeros"):
            raise MRSynthError(f"unknown padding {padding!r}: use 'reflect' or 'zeros'")
        if pointwise_width < 0:
            raise MRSynthError(f"pointwise_width must be 0 (no branch) or a positive width, not {pointwise_width}")
        self.dilations = [tuple(int(v) for v in d) for d in dilations]
        blocks: list[nn.Module] = []
        channels = in_channels
        for stage, dilation in enumerate(self.dilations):
            stage_width = width * 2**stage
            for _ in range(blocks_per_stage):
                blocks.append(PreActBlock(channels, stage_width, dilation, padding))  # type: ignore[arg-type]
                channels = stage_width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv3d(channels, out_channels, 1)
        self.blocks_per_stage = blocks_per_stage
        self.pointwise = pointwise_mlp(in_channels, pointwise_width, out_channels) if pointwise_width else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.blocks(x))
        return out if self.pointwise is None else out + self.pointwise(x)

    def receptive_field(self) -> Triple:
        """Receptive field in voxels per axis: each 3x3x3 convolution of dilation d adds 2d."""
        per_axis = [1, 1, 1]
        for dilation in self.dilations:
            for axis in range(3):
                per_axis[axis] += 2 * 2 * dilation[axis] * self.blocks_per_stage
        return tuple(per_axis)  # type: ignore[return-value]


class PointwiseNet(nn.Module):
    """A per-voxel map of the inputs alone (our addition): no context, so nothing to denoise or to tell
    tissues of equal echo values apart, but it cannot learn anatomy that another head lacks either. It is
    the first stage of a HighResNet with ``pointwise_width`` (``init_weights`` carries its weights over
    as that branch) and the context-free ablation of one."""

    def __init__(self, in_channels: int = 2, out_channels: int = 1, width: int = 32):
        super().__init__()
        self.pointwise = pointwise_mlp(in_channels, width, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(x)

    def receptive_field(self) -> Triple:
        return (1, 1, 1)


class MRSR(nn.Module):
    """Magnetic Resonance Super-Resolution network (paper 003, Fig. 2; VDSR-style residual learning).

    ``depth`` 3x3x3 convolutions of ``width`` feature maps, each but the last followed by ReLU, zero
    padding so the output keeps the input's size. The input is the thick-slice volume already
    interpolated onto the thin grid; the network predicts only the residual, which is added to the
    first ``out_channels`` inputs (output contrast i is input contrast i, super-resolved). The last
    layer starts at zero, so an untrained network returns its interpolated input exactly and
    training starts from interpolation rather than from noise. The other layers get He
    initialisation, as VDSR's: PyTorch's default would shrink the signal about threefold per layer,
    which a plain 20-layer stack without normalisation cannot afford.

    ``ratio_residual`` (our addition, for echoes of one acquisition such as DESS S1/S2) adds to each
    later output the first output's residual times that echo's interpolated ratio to the first
    (``x_i / x_0``), on top of its own residual. A later echo's own residual is then needed only
    where the interpolated ratio must change, and errors of the first echo's residual no longer
    move the ratio that carries T2: with zero own residuals, ``out_i / out_0 = x_i / x_0`` exactly.
    The ratio is taken where the first echo exceeds ``RATIO_FLOOR`` (0 elsewhere) and clipped to
    ``[0, RATIO_MAX]``, in the inputs' normalised units (each divided by its 99th percentile).
    """

    RATIO_FLOOR = 0.05
    RATIO_MAX = 4.0

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 20,
        width: int = 64,
        ratio_residual: bool = False,
    ):
        super().__init__()
        if depth < 2 or width < 1:
            raise MRSynthError(f"MRSR needs depth >= 2 and width >= 1, not depth {depth}, width {width}")
        if not 1 <= out_channels <= in_channels:
            raise MRSynthError(
                f"MRSR adds its residual to the first outputs' inputs: out_channels ({out_channels}) must be "
                f"between 1 and in_channels ({in_channels})"
            )
        if ratio_residual and out_channels < 2:
            raise MRSynthError(
                "ratio_residual carries the first echo's residual into the later echoes: it needs two or more "
                f"outputs (e.g. DESS S1 and S2), not {out_channels}"
            )
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(depth - 1):
            conv = nn.Conv3d(channels, width, 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(inplace=True)]
            channels = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv3d(channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.depth = depth
        self.out_channels = out_channels
        self.ratio_residual = ratio_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.head(self.body(x))
        if self.ratio_residual:
            first = x[:, :1]
            later = x[:, 1 : self.out_channels]
            ratio = torch.where(first > self.RATIO_FLOOR, later / first.clamp_min(self.RATIO_FLOOR), 0.0)
            carried = ratio.clamp(0.0, self.RATIO_MAX) * residual[:, :1]
            residual = torch.cat([residual[:, :1], residual[:, 1:] + carried], dim=1)
        return x[:, : self.out_channels] + residual

    def receptive_field(self) -> Triple:
        """Each 3x3x3 convolution adds 2 voxels per axis."""
        size = 1 + 2 * self.depth
        return (size, size, size)


class Ensemble(nn.Module):
    """The mean output of several networks of the same task (built from their stored descriptions).

    Members trained alike from different random seeds err differently; their mean keeps what they
    agree on. Our addition (``mrsynth ensemble``), not from the papers. Members conditioned on
    acquisition parameters (ParamNets, chained or not) take the same conditioning values, passed on
    by ``forward``; the ensemble then answers ``conditions``, ``size_multiple`` and
    ``receptive_field_2d`` as one of them would, so ``paramnet.BoundParamNet`` runs it like one.
    """

    def __init__(self, members: list[dict]):
        super().__init__()
        if len(members) < 2:
            raise MRSynthError(f"an ensemble needs two or more members, not {len(members)}")
        self.members = nn.ModuleList(build_network(m["architecture"], m["arguments"]) for m in members)
        conditions = {getattr(member, "conditions", None) for member in self.members}
        if len(conditions) > 1:
            raise MRSynthError(
                f"an ensemble's members must take the same conditioning values, not {sorted(map(str, conditions))}"
            )
        self.conditions = conditions.pop()  # None: unconditioned members

    def forward(self, x: torch.Tensor, *conditions: torch.Tensor) -> torch.Tensor:
        total = self.members[0](x, *conditions)
        for member in self.members[1:]:  # a running sum: no stack of every member's output per tile
            total = total + member(x, *conditions)
        return total / len(self.members)

    def receptive_field(self) -> Triple:
        fields = [member.receptive_field() for member in self.members]
        return tuple(max(axis) for axis in zip(*fields, strict=True))  # type: ignore[return-value]

    @property
    def size_multiple(self) -> int:
        """Conditioned 2D members: the least common multiple of theirs."""
        return math.lcm(*(member.size_multiple for member in self.members))

    def receptive_field_2d(self) -> int:
        """Conditioned 2D members: the largest of theirs."""
        return max(member.receptive_field_2d() for member in self.members)


ARCHITECTURES = {"HighResNet": HighResNet, "UNet": UNet, "MRSR": MRSR, "ParamNet": ParamNet, "Ensemble": Ensemble}
ARCHITECTURES["PointwiseNet"] = PointwiseNet
ARCHITECTURES["SliceUNet"] = SliceUNet
ARCHITECTURES["ConvAutoencoder"] = ConvAutoencoder
ARCHITECTURES["DRUNetSlices"] = DRUNetSlices
ARCHITECTURES["MapParamNet"] = MapParamNet
ARCHITECTURES["ChainedParamNet"] = ChainedParamNet


def network_arguments(model: dict, in_channels: int, voxel_size: Sequence[float]) -> dict:
    """Constructor arguments from a training config's ``model`` section.

    HighResNet takes ``blocks_per_stage`` (and ``pointwise_width``, stored only when set, so that
    older checkpoints' arguments stay as they were) and gets dilations made isotropic for ``voxel_size``;
    U-Net takes ``levels`` and ``batch_norm`` (U-Net+BN of the paper).
    """
    common = {"in_channels": in_channels, "out_channels": 1, "width": int(model["width"]), "padding": model["padding"]}
    if model["architecture"] == "HighResNet":
        dilations = [list(d) for d in isotropic_dilations(voxel_size)]
        arguments = common | {"blocks_per_stage": int(model["blocks_per_stage"]), "dilations": dilations}
        pointwise = int(model.get("pointwise_width", 0))
        return arguments | {"pointwise_width": pointwise} if pointwise else arguments
    if model["architecture"] == "PointwiseNet":
        width = int(model.get("pointwise_width", 0))
        if width <= 0:
            raise MRSynthError("PointwiseNet needs model.pointwise_width > 0 (its hidden width)")
        return {"in_channels": in_channels, "out_channels": 1, "width": width}
    if model["architecture"] == "UNet":
        return common | {"levels": int(model["levels"]), "batch_norm": bool(model["batch_norm"])}
    raise MRSynthError(f"unknown architecture {model['architecture']!r}: use {' or '.join(ARCHITECTURES)}")


def build_network(architecture: str, arguments: dict) -> nn.Module:
    """Rebuild a network from its name and constructor arguments (as stored in a checkpoint)."""
    if architecture not in ARCHITECTURES:
        raise MRSynthError(
            f"unknown architecture {architecture!r}: this version knows {', '.join(sorted(ARCHITECTURES))}; "
            "update mrsynth or use another checkpoint"
        )
    try:
        return ARCHITECTURES[architecture](**arguments)
    except TypeError as err:
        raise MRSynthError(f"architecture {architecture} cannot be built with arguments {arguments}: {err}") from None
