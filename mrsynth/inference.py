"""Whole-volume inference from a patch-trained network (paper 000, section II.F.1).

Two ways to cover a volume, both on paper-order arrays ``[C, SI, AP, LR]``:

* ``sliding_window``: the paper's method. Windows of the training patch size at a fixed stride,
  each weighted by a Gaussian (sigma = 1/6 of the patch per axis) so that patch borders, where the
  network saw padding, count little. For High-to-low models sTSE_HR and sTSE_LR are fused at the
  same time: each HR window is downsampled on its own and put at its place on the thick grid, which
  is why the LR stride must be a multiple of the slice factor.
* ``full_context``: the fast mode for CPUs. The network is fully convolutional, so it runs on large
  tiles, each with a halo of half its receptive field that is thrown away afterwards; the result is
  the same as one pass over the whole volume, at about the cost of one pass, with bounded memory.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .errors import MRSynthError
from .highlow import SLICE_FACTOR, downsample_lr
from .volume_io import AXIS_NAMES

Progress = Callable[[int, int], None]
Triple = tuple[int, int, int]

SIGMA_FRACTION = 1 / 6
DEFAULT_MEMORY_GB = 4.0
# Peak activation memory of one HighResNet forward pass, measured on CPU: about 8 float32 feature maps
# of the widest layer per voxel (width 8: ~0.9 kB, width 16: ~1.8 kB per voxel).
_LIVE_MAPS = 8
_MAX_SPLITS = 32


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``, checked to exist."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise MRSynthError(f"device {spec} was asked for but this PyTorch sees no CUDA GPU: use --device cpu")
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MRSynthError(
                f"device {spec} does not exist (this machine has {torch.cuda.device_count()} CUDA GPUs, "
                f"numbered from 0): use cuda:0 or auto"
            )
        return device
    raise MRSynthError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N")


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


def window_starts(length: int, patch: int, stride: int, align: int = 1) -> list[int]:
    """Window starts along one axis: every ``stride`` voxels, plus a last window ending at the end.

    All starts are multiples of ``align`` (the slice factor on the LR axis of High-to-low models, so
    that each window maps onto whole thick slices); that needs ``stride`` and ``length - patch`` to
    be multiples of ``align``, which the caller guarantees by padding.
    """
    if patch > length:
        raise ValueError(f"patch {patch} is longer than the axis ({length}): pad the volume first")
    if not 1 <= stride <= patch:
        raise ValueError(f"stride {stride} must lie in 1..{patch} so that windows leave no gaps")
    if stride % align or (length - patch) % align:
        raise ValueError(f"stride {stride} and length - patch {length - patch} must be multiples of {align}")
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def check_stride(stride: Sequence[int], patch: Sequence[int], slice_factor: int | None = None) -> Triple:
    """Validate a stride (SI, AP, LR) for a patch; ``slice_factor`` when sTSE_LR is fused too."""
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
    if slice_factor is not None and stride[2] % slice_factor:
        options = ", ".join(str(slice_factor * k) for k in range(1, 4))
        raise MRSynthError(
            f"LR stride {stride[2]} is not a multiple of the slice factor {slice_factor} that this "
            f"High-to-low model needs to fuse sTSE_LR: use {options}, ..."
        )
    return stride  # type: ignore[return-value]


def _as_array(inputs: np.ndarray | torch.Tensor) -> np.ndarray:
    array = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    if array.ndim != 4:
        raise ValueError(f"inputs must be [C, SI, AP, LR], got shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _pad_end(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Reflect-pad the spatial axes at their end up to ``shape`` (numpy reflects repeatedly if needed)."""
    pads = [(0, 0)] + [(0, max(0, t - n)) for n, t in zip(array.shape[1:], shape, strict=True)]
    if not any(after for _, after in pads):
        return array
    return np.pad(array, pads, mode="reflect" if min(array.shape[1:]) > 1 else "edge")


def _check_lr(shape: Sequence[int], slice_factor: int) -> None:
    if shape[2] % slice_factor:
        raise MRSynthError(
            f"the volume's length {shape[2]} along LR is not a multiple of the slice factor {slice_factor}: "
            "pad the LR axis first (mrsynth.synthesis.synthesize does this)"
        )


def sliding_window(
    inputs: np.ndarray | torch.Tensor,
    network: nn.Module,
    patch: Sequence[int],
    stride: Sequence[int],
    *,
    lr_kernel: Sequence[float] | None = None,
    slice_factor: int = SLICE_FACTOR,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Gaussian-weighted sliding-window inference; returns (HR ``[C_out, SI, AP, LR]``, LR or None).

    With ``lr_kernel`` each HR window is downsampled along LR (offset 0) and accumulated on the
    thick grid with the Gaussian reduced to thick slices (mean over each group of ``slice_factor``),
    so sTSE_HR and sTSE_LR are fused at once (section II.F.1); the LR length of ``inputs``, the
    patch and the LR stride must then be multiples of ``slice_factor``. Axes shorter than the patch
    are reflect-padded at their end and cropped back. ``progress(done, total)`` is called with the
    number of windows after each batch; an exception it raises (``Cancelled``) stops the work.
    """
    array = _as_array(inputs)
    patch = tuple(int(p) for p in patch)
    fuse_lr = lr_kernel is not None
    stride = check_stride(stride, patch, slice_factor if fuse_lr else None)
    shape = array.shape[1:]
    if fuse_lr:
        _check_lr(shape, slice_factor)
        if patch[2] % slice_factor:
            raise MRSynthError(
                f"the patch's LR size {patch[2]} is not a multiple of the slice factor {slice_factor}, so its "
                "output cannot be reduced to thick slices: fix the model's patch"
            )
    if batch_size < 1:
        raise MRSynthError(f"batch size {batch_size} is not positive: use 1 or more")
    device = torch.device(device)
    padded = tuple(max(n, p) for n, p in zip(shape, patch, strict=True))
    array = _pad_end(array, padded)
    aligns = (1, 1, slice_factor if fuse_lr else 1)
    starts = [window_starts(n, p, s, a) for n, p, s, a in zip(padded, patch, stride, aligns, strict=True)]
    windows = list(itertools.product(*starts))

    weights = gaussian_weights(patch)
    hr_sum: np.ndarray | None = None
    hr_weight = np.zeros(padded, dtype=np.float32)
    if fuse_lr:
        kernel = torch.as_tensor(lr_kernel, dtype=torch.float32, device=device)
        thick_patch = patch[2] // slice_factor
        lr_weights = weights.reshape(*patch[:2], thick_patch, slice_factor).mean(-1)
        lr_shape = (*padded[:2], padded[2] // slice_factor)
        lr_sum: np.ndarray | None = None
        lr_weight = np.zeros(lr_shape, dtype=np.float32)

    with torch.inference_mode():
        for first in range(0, len(windows), batch_size):
            batch = windows[first : first + batch_size]
            crops = np.stack([array[:, a : a + patch[0], b : b + patch[1], c : c + patch[2]] for a, b, c in batch])
            out = network(torch.from_numpy(crops).to(device))
            if tuple(out.shape[2:]) != patch:
                raise MRSynthError(
                    f"the network turned a {patch} patch into {tuple(out.shape[2:])}: it must keep the size"
                )
            hr_out = out.float().cpu().numpy()
            if hr_sum is None:
                hr_sum = np.zeros((out.shape[1], *padded), dtype=np.float32)
            if fuse_lr:
                lr_out = downsample_lr(out.float(), kernel, slice_factor).cpu().numpy()
                if lr_sum is None:
                    lr_sum = np.zeros((out.shape[1], *lr_shape), dtype=np.float32)
            for item, (a, b, c) in enumerate(batch):
                region = (slice(a, a + patch[0]), slice(b, b + patch[1]), slice(c, c + patch[2]))
                hr_sum[(slice(None), *region)] += weights * hr_out[item]
                hr_weight[region] += weights
                if fuse_lr:
                    t = c // slice_factor
                    thick = (slice(a, a + patch[0]), slice(b, b + patch[1]), slice(t, t + thick_patch))
                    lr_sum[(slice(None), *thick)] += lr_weights * lr_out[item]
                    lr_weight[thick] += lr_weights
            if progress is not None:
                progress(min(first + batch_size, len(windows)), len(windows))

    crop = (slice(None), slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))
    hr = (hr_sum / hr_weight)[crop]
    if not fuse_lr:
        return hr, None
    lr = (lr_sum / lr_weight)[crop[:3] + (slice(0, shape[2] // slice_factor),)]
    return hr, lr


def default_halo(network: nn.Module) -> Triple:
    """Half the network's receptive field per axis: the context a voxel's output depends on."""
    if not hasattr(network, "receptive_field"):
        raise MRSynthError(f"{type(network).__name__} does not report its receptive field: give full_context a halo")
    return tuple(int(r) // 2 for r in network.receptive_field())  # type: ignore[return-value]


def _cores(length: int, tile: int) -> list[tuple[int, int]]:
    """Split an axis into near-equal cores of at most ``tile`` voxels (no thin last core)."""
    count = -(-length // max(1, tile))
    edges = [round(i * length / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _extents(length: int, tile: int, halo: int) -> list[int]:
    """Length of each tile (core plus halo, clipped at the border) along one axis."""
    return [min(length, stop + halo) - max(0, start - halo) for start, stop in _cores(length, tile)]


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


def full_context(
    inputs: np.ndarray | torch.Tensor,
    network: nn.Module,
    *,
    halo: Sequence[int] | None = None,
    tile: Sequence[int] | None = None,
    memory_gb: float = DEFAULT_MEMORY_GB,
    lr_kernel: Sequence[float] | None = None,
    slice_factor: int = SLICE_FACTOR,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Overlap-tile inference equal to one pass of the network over the whole volume.

    Each tile is a core of at most ``tile`` voxels (default: ``plan_tiles`` within ``memory_gb``)
    plus ``halo`` voxels of context on each side (clipped at the volume border, where the network's
    own padding sees what it would see on the whole volume); only the core is kept. With ``halo`` >=
    half the receptive field (the default, from ``network.receptive_field()``) a core voxel's output
    depends on nothing the cut changed.
    The network must be in eval mode (BatchNorm then acts voxel by voxel). sTSE_LR, when
    ``lr_kernel`` is given, is ``downsample_lr`` of the assembled HR. ``progress(done, total)`` counts
    tiles.
    """
    array = _as_array(inputs)
    halo = tuple(int(h) for h in (default_halo(network) if halo is None else halo))
    shape = array.shape[1:]
    if lr_kernel is not None:
        _check_lr(shape, slice_factor)
    device = torch.device(device)
    # Reflection padding inside the network needs each axis longer than its dilation (<= halo).
    padded = tuple(max(n, h + 1) for n, h in zip(shape, halo, strict=True))
    array = _pad_end(array, padded)
    if tile is None:
        tile = plan_tiles(padded, halo, tile_budget(network, memory_gb))
    tiles = list(itertools.product(*(_cores(n, t) for n, t in zip(padded, tile, strict=True))))

    hr: np.ndarray | None = None
    with torch.inference_mode():
        for done, cores in enumerate(tiles, start=1):
            lows = [max(0, start - h) for (start, _), h in zip(cores, halo, strict=True)]
            highs = [min(n, stop + h) for (_, stop), h, n in zip(cores, halo, padded, strict=True)]
            crop = array[:, lows[0] : highs[0], lows[1] : highs[1], lows[2] : highs[2]]
            out = network(torch.from_numpy(np.ascontiguousarray(crop[None])).to(device))[0]
            if tuple(out.shape[1:]) != crop.shape[1:]:
                raise MRSynthError(
                    f"the network turned a {crop.shape[1:]} tile into {tuple(out.shape[1:])}: it must keep the size"
                )
            if hr is None:
                hr = np.zeros((out.shape[0], *padded), dtype=np.float32)
            keep = tuple(slice(start - low, stop - low) for (start, stop), low in zip(cores, lows, strict=True))
            target = tuple(slice(start, stop) for start, stop in cores)
            hr[(slice(None), *target)] = out[(slice(None), *keep)].float().cpu().numpy()
            if progress is not None:
                progress(done, len(tiles))

    hr = hr[:, : shape[0], : shape[1], : shape[2]]
    if lr_kernel is None:
        return hr, None
    lr = downsample_lr(torch.from_numpy(np.ascontiguousarray(hr)), lr_kernel, slice_factor).numpy()
    return hr, lr
