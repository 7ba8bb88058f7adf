"""Param-to-Param through tissue maps: estimate PD, fat fraction, T1 and T2, then apply the signal equation.

Why: Param-Net (paper 001) must learn the spin-echo equation itself, for every pair of input and
output settings. Our Param-to-Param did not: it loses to a rescaled copy of its input next to the
input's own setting, and from a short-TR, short-TE input (where CSF is nearly as bright as tissue)
it renders CSF black at long TE (docs/other-systems.md). The equation is known; what the network
cannot know is each voxel's tissue. So here the same Param-Net, conditioned in every block on the
*input's* TR and TE only, predicts four maps per voxel, and the output at any TR/TE is the
equation applied to them:

    S = PD [(1 - ff) (1 - exp(-TR/T1)) exp(-TE/T2) + ff (1 - exp(-TR/T1_fat)) exp(-TE/T2_fat)]

the simulator's two-component model (``reparam_data``), with the fat component's T1 and T2 fixed.
The same maps serve every target setting, so rendering them at the input's own setting must give
the (denoised) input back; training checks that too (``reparam_training``). Paper 001 names T1/T2
mapping as future work; this is our addition, not the paper's architecture. Measured on the
held-out phantom (docs/other-systems.md), it gives the best same-input mean PSNR of our
Param-to-Param models but still does not find CSF in a short-TR, short-TE input; it is an option
of ``mrsynth train``, not the bundled model.

Units: PD comes out in units of the input's 99th percentile in the head. The rendered image's
scale therefore changes with the target setting; ``mrsynth synthesize`` divides it by its own 99th
percentile inside the body (``normalisation["output"] == "p99"``), the convention of every model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional

from .acquisition import unscaled
from .errors import MRSynthError
from .paramnet import ParamNet

# Ranges of the maps (ms), log-spaced: the 1.5 T table spans T1 350-2569 ms and T2 47-329 ms.
T1_RANGE = (100.0, 6000.0)
T2_RANGE = (10.0, 3000.0)
MAPS = ("PD", "fat_fraction", "T1", "T2")


def _unscale(value: torch.Tensor, low: float, high: float, scale: str) -> torch.Tensor:
    """[0, 1] back to the range (``acquisition.unscaled`` with the range given as numbers)."""
    return unscaled(value, {"min": low, "max": high, "scale": scale})


class MapParamNet(nn.Module):
    """Param-Net to tissue maps, rendered at the target TR/TE by the spin-echo equation.

    ``conditions`` are the scaled (input_TR, input_TE, TR, TE) of the Param-to-Param declaration;
    ``ranges`` give each one's (min, max, scale) so that the target's values can be unscaled.
    """

    def __init__(
        self,
        in_channels: int = 1,
        conditions: int = 4,
        width: int = 8,
        levels: int = 4,
        max_width: int = 64,
        ranges: Sequence[Sequence] = ((1200.0, 10000.0, "linear"), (20.0, 1000.0, "log")) * 2,
        fat_t1: float = 350.0,
        fat_t2: float = 70.0,
    ):
        super().__init__()
        if conditions != 4 or len(ranges) != 4:
            raise MRSynthError("MapParamNet takes four conditions (input_TR, input_TE, TR, TE) with a range each")
        self.backbone = ParamNet(in_channels, len(MAPS), 2, width, levels, max_width)
        self.conditions = conditions
        self.ranges = [(float(lo), float(hi), str(scale)) for lo, hi, scale in ranges]
        self.fat_t1, self.fat_t2 = float(fat_t1), float(fat_t2)

    @property
    def size_multiple(self) -> int:
        return self.backbone.size_multiple

    def receptive_field_2d(self) -> int:
        return self.backbone.receptive_field_2d()

    def maps(self, x: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
        """[B, 4, H, W]: PD (input p99 units), fat fraction, T1 and T2 (ms) from ``x`` at scaled ``given`` TR/TE."""
        raw = self.backbone(x, given).float()
        pd = functional.softplus(raw[:, 0:1])
        ff = torch.sigmoid(raw[:, 1:2])
        t1 = _unscale(torch.sigmoid(raw[:, 2:3]), *T1_RANGE, "log")
        t2 = _unscale(torch.sigmoid(raw[:, 3:4]), *T2_RANGE, "log")
        return torch.cat([pd, ff, t1, t2], 1)

    def settings(self, scaled: torch.Tensor, first: int) -> tuple[torch.Tensor, torch.Tensor]:
        """TR and TE (ms), [B, 1, 1, 1], from the scaled conditions ``first`` and ``first + 1``."""
        tr = _unscale(scaled[:, first].float(), *self.ranges[first])
        te = _unscale(scaled[:, first + 1].float(), *self.ranges[first + 1])
        return tr[:, None, None, None], te[:, None, None, None]

    def render(self, maps: torch.Tensor, tr: torch.Tensor, te: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W]: the two-component spin-echo signal of ``maps`` at ``tr``, ``te`` (ms, [B, 1, 1, 1])."""
        pd, ff, t1, t2 = maps[:, 0:1], maps[:, 1:2], maps[:, 2:3], maps[:, 3:4]
        water = (1.0 - torch.exp(-tr / t1)) * torch.exp(-te / t2)
        fat = (1.0 - torch.exp(-tr / self.fat_t1)) * torch.exp(-te / self.fat_t2)
        return pd * ((1.0 - ff) * water + ff * fat)

    def forward(self, x: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """The image at the target TR/TE (``conditions[:, 2:]``), in units of the input's 99th percentile."""
        if conditions.shape != (x.shape[0], self.conditions):
            raise MRSynthError(
                f"MapParamNet takes {self.conditions} conditioning values per image, "
                f"got shape {tuple(conditions.shape)}"
            )
        maps = self.maps(x, conditions[:, :2])
        return self.render(maps, *self.settings(conditions, 2)).to(x.dtype)


def fat_component(spec: dict) -> dict[str, float]:
    """The spec's fixed fat T1 and T2 (ms), as MapParamNet's arguments."""
    fat = spec["fat_component"]
    if not all(math.isfinite(float(fat[k])) and float(fat[k]) > 0 for k in ("T1", "T2")):
        raise MRSynthError("the tissue spec's fat_component needs positive T1 and T2 (ms)")
    return {"fat_t1": float(fat["T1"]), "fat_t2": float(fat["T2"])}
