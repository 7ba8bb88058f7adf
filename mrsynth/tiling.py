"""Where windows and tiles go: the geometry of covering a volume, separate from running a network.

Sliding windows (paper 000, section II.F.1) sit every ``stride`` voxels plus one last window flush
with the end, each weighted by a Gaussian; overlap tiles (the full-context mode) are cores planned
within a memory budget, each with a halo of context. All shapes are in paper order (SI, AP, LR).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from torch import nn

from .errors import MRSynthError
from .volume_io import AXIS_NAMES

Triple = tuple[int, int, int]

SIGMA_FRACTION = 1 / 6
DEFAULT_MEMORY_GB = 4.0
# Peak activation memory of one HighResNet forward pass, measured on CPU: about 8 float32 feature maps
# of the widest layer per voxel (width 8: ~0.9 kB, width 16: ~1.8 kB per voxel).
_LIVE_MAPS = 8
_MAX_SPLITS = 32


def gaussian_weights(patch: Sequence[int], sigma_fraction: float = SIGMA_FRACTION) -> np.ndarray:
    """Separable Gaussian centred on the patch, sigma = ``sigma_fraction`` x patch size per axis.

    The peak is 1 and every weight is positive (about exp(-4.5) at the borders for 1/6), so each
    voxel that any window covers gets a defined weighted mean.
    """
    profiles = []
    for size in patch:
        centre = (size - 1) / 2
        sigma = size * sigma_fraction
        profiles.append(np.exp(-0.5 * ((np.arange(size) - centre) / sigma) ** 2))
    weights = profiles[0]
    for profile in profiles[1:]:
        weights = np.multiply.outer(weights, profile)
    return weights.astype(np.float32)


def window_starts(length: int, patch: int, stride: int) -> list[int]:
    """Window starts along one axis: every ``stride`` voxels, plus a last window ending at the end."""
    if patch > length:
        raise ValueError(f"patch {patch} is longer than the axis ({length}): pad the volume first")
    if not 1 <= stride <= patch:
        raise ValueError(f"stride {stride} must lie in 1..{patch} so that windows leave no gaps")
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def check_stride(stride: Sequence[int], patch: Sequence[int], slice_factor: int | None = None) -> Triple:
    """Validate a stride (SI, AP, LR) for a patch; ``slice_factor`` when sTSE_LR is fused too.

    Then the windows aligned to thick slices, every lcm(LR stride, factor) voxels, must still
    leave no gap, so that lcm may not exceed the patch.
    """
    if len(stride) != 3:
        raise MRSynthError(f"stride {tuple(stride)} needs 3 values in the order SI AP LR")
    stride = tuple(int(s) for s in stride)
    for axis, (s, p) in enumerate(zip(stride, patch, strict=True)):
        if s < 1:
            raise MRSynthError(f"stride {s} along {AXIS_NAMES[axis]} is not positive: use 1 or more")
        if s > p:
            raise MRSynthError(
                f"stride {s} along {AXIS_NAMES[axis]} is larger than the patch ({p}), so windows would leave "
                f"gaps: use at most {p}"
            )
    if slice_factor is not None and math.lcm(stride[2], slice_factor) > patch[2]:
        raise MRSynthError(
            f"with LR stride {stride[2]} the windows aligned to the slice factor {slice_factor} come every "
            f"{math.lcm(stride[2], slice_factor)} voxels, more than the patch ({patch[2]}), and leave thick slices "
            f"uncovered: use an LR stride that divides or is a multiple of {slice_factor}"
        )
    return stride  # type: ignore[return-value]


def boxes_touching(mask: np.ndarray, size: Sequence[int], corners: Sequence[Sequence[int]]) -> np.ndarray:
    """For each box of ``size`` at ``corners``, whether it holds any voxel of ``mask``.

    Uses a summed-volume table, so thousands of windows cost one cumulative sum, not one scan each.
    """
    table = np.zeros(tuple(n + 1 for n in mask.shape), dtype=np.int64)
    table[1:, 1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1).cumsum(2)
    lows = np.asarray(corners, dtype=np.int64).reshape(-1, 3)
    highs = np.minimum(lows + np.asarray(size, dtype=np.int64), mask.shape)
    total = np.zeros(len(lows), dtype=np.int64)
    for pick in itertools.product((0, 1), repeat=3):
        index = tuple(np.where(p, highs[:, axis], lows[:, axis]) for axis, p in enumerate(pick))
        total += (-1) ** (3 - sum(pick)) * table[index]
    return total > 0


def default_halo(network: nn.Module) -> Triple:
    """Half the network's receptive field per axis: the context a voxel's output depends on."""
    if not hasattr(network, "receptive_field"):
        raise MRSynthError(
            f"{type(network).__name__} does not report its receptive field, so full-context tiles cannot be cut "
            "exactly: use sliding windows (--preset paper)"
        )
    return tuple(int(r) // 2 for r in network.receptive_field())  # type: ignore[return-value]


def cores(length: int, tile: int) -> list[tuple[int, int]]:
    """Split an axis into near-equal cores of at most ``tile`` voxels (no thin last core)."""
    count = -(-length // max(1, tile))
    edges = [round(i * length / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _extents(length: int, tile: int, halo: int) -> list[int]:
    """Length of each tile (core plus halo, clipped at the border) along one axis."""
    return [min(length, stop + halo) - max(0, start - halo) for start, stop in cores(length, tile)]


def tile_budget(network: nn.Module, memory_gb: float = DEFAULT_MEMORY_GB) -> int:
    """How many voxels one tile may hold so that a forward pass stays within ``memory_gb``."""
    widths = [m.out_channels for m in network.modules() if isinstance(m, nn.Conv3d)]
    bytes_per_voxel = 4 * _LIVE_MAPS * max(widths, default=64)
    return max(1, int(memory_gb * 1e9 / bytes_per_voxel))


def plan_tiles(shape: Sequence[int], halo: Sequence[int], max_voxels: int) -> Triple:
    """Core sizes (SI, AP, LR) that compute the fewest voxels with no tile above ``max_voxels``.

    Halos are recomputed work, so the best split is rarely cubes: with a large budget the volume is
    cut along one axis only, with an unlimited one not at all (exactly one network pass).
    """
    options = []
    for length, h in zip(shape, halo, strict=True):
        axis = {}
        for count in range(1, min(length, _MAX_SPLITS) + 1):
            tile = -(-length // count)
            extents = _extents(length, tile, h)
            axis[tile] = (sum(extents), max(extents), len(extents))
        options.append(list(axis.items()))
    best: tuple[tuple[int, int], Triple] | None = None
    smallest = math.inf
    for combo in itertools.product(*options):
        largest = math.prod(o[1][1] for o in combo)
        smallest = min(smallest, largest)
        if largest > max_voxels:
            continue
        key = (math.prod(o[1][0] for o in combo), math.prod(o[1][2] for o in combo))
        if best is None or key < best[0]:
            best = (key, tuple(o[0] for o in combo))  # type: ignore[assignment]
    if best is None:
        raise MRSynthError(
            f"tiles of a {tuple(shape)} volume with a halo of {tuple(halo)} voxels need at least {smallest} voxels, "
            f"more than the {max_voxels} the memory limit allows: allow more memory (--memory) or use --mode sliding"
        )
    return best[1]
