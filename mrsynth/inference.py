"""The inference engine: a patch-trained network over a whole volume (paper 000, section II.F.1).

Two modes, both on paper-order arrays ``[C, SI, AP, LR]``:

* ``sliding``: the paper's method. Windows of the training patch size at a stride, each weighted
  by a Gaussian (sigma = 1/6 of the patch per axis) so that patch borders, where the network saw
  padding, count little. For High-to-low models sTSE_HR and sTSE_LR are fused at the same time:
  each window that starts on a thick-slice boundary is also downsampled on its own and put at its
  place on the thick grid.
* ``full-context``: the network is fully convolutional, so it runs on large tiles, each with a halo
  of half its receptive field that is thrown away afterwards; the result equals one pass over the
  whole volume, at about the cost of one pass, with bounded memory.

Windows run in batches; the output and weight buffers hold one output channel and one weight
channel and live on the CPU unless asked otherwise, so GPU memory holds only the network's batch.
A CUDA out-of-memory error halves the batch (or the tiles) and goes on. ``PRESETS`` names the
usual choices: ``fast`` (full-context), ``paper`` (stride 18, 18, 4), ``smooth`` (18, 18, 1).
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from . import compiling
from .errors import MRSynthError
from .highlow import SLICE_FACTOR, LrKernels, downsample_lr, lr_configurations
from .tiling import (
    DEFAULT_MEMORY_GB,
    boxes_touching,
    check_stride,
    cores,
    default_halo,
    gaussian_weights,
    plan_tiles,
    tile_budget,
    window_starts,
)

Progress = Callable[[int, int], None]
Triple = tuple[int, int, int]

MODES = ("full-context", "sliding")
PRESETS: dict[str, tuple[str, Triple | None]] = {
    "fast": ("full-context", None),
    "paper": ("sliding", (18, 18, 4)),
    "smooth": ("sliding", (18, 18, 1)),
}
_OOM_SHRINK = 0.7  # after a CUDA out-of-memory error, tiles get at most this share of the failed one's voxels
PRECISIONS: dict[str, torch.dtype | None] = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


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


@dataclass(frozen=True)
class InferenceOptions:
    """How the engine covers a volume; the same object serves the CLI, the Slicer modules and scripts.

    ``stride`` None means the model's own; ``tile`` None means planned from ``memory_gb``.
    ``skip_background`` skips windows (and tiles) with no voxel of the body mask: their voxels get
    0, the background of normalised images. ``precision`` bfloat16 runs the network under autocast
    on a CPU or a GPU, float16 on a GPU only.
    ``channels_last`` runs 3D convolutions in the channels-last layout, which oneDNN (CPU) and cuDNN
    (GPU) run faster (on a CPU with the bundled model, 1.64x over the default layout in
    docs/benchmarks.md; results equal to 1e-6).
    ``buffers_on_device`` keeps the fusion buffers on the GPU (faster, more GPU memory) instead of
    the CPU. ``compile`` runs the sliding mode's windows through ``torch.compile`` with frozen weights
    (``mrsynth.compiling``): seconds of compilation once per process, then faster windows; where it
    cannot compile, the run goes on uncompiled with a warning.
    """

    mode: str = "full-context"
    stride: Triple | None = None
    batch_size: int = 4
    tile: Triple | None = None
    memory_gb: float = DEFAULT_MEMORY_GB
    skip_background: bool = False
    precision: str = "float32"
    channels_last: bool = True
    buffers_on_device: bool = False
    compile: bool = False

    @classmethod
    def preset(cls, name: str, **changes: object) -> InferenceOptions:
        """Options for a named preset (``fast``, ``paper``, ``smooth``), with any field changed."""
        if name not in PRESETS:
            raise MRSynthError(f"unknown preset {name!r}: use {', '.join(PRESETS)}")
        mode, stride = PRESETS[name]
        return replace(cls(mode=mode, stride=stride), **changes)  # type: ignore[arg-type]

    def checked(self, device: torch.device) -> InferenceOptions:
        """These options, validated for ``device``; raises MRSynthError naming the bad option."""
        if self.mode not in MODES:
            raise MRSynthError(f"unknown mode {self.mode!r}: use {' or '.join(MODES)}")
        if self.mode != "sliding" and self.stride is not None:
            raise MRSynthError("a stride only applies to the sliding mode: use mode 'sliding' or leave the stride out")
        if self.batch_size < 1:
            raise MRSynthError(f"batch size {self.batch_size} is not positive: use 1 or more")
        if not self.memory_gb > 0:
            raise MRSynthError(f"memory limit {self.memory_gb} GB is not positive: give a size in GB, e.g. 4")
        if self.precision not in PRECISIONS:
            raise MRSynthError(f"unknown precision {self.precision!r}: use {', '.join(PRECISIONS)}")
        if self.compile and self.mode != "sliding":
            raise MRSynthError(
                "compiling applies to the sliding mode, whose windows share one shape: use mode sliding "
                "(e.g. the paper preset) or leave compile off"
            )
        if self.precision == "float16" and device.type != "cuda":
            raise MRSynthError(
                "precision float16 needs a CUDA device (CPUs compute it slowly): "
                f"use bfloat16 or float32 on {device.type}"
            )
        return self


@dataclass
class InferenceReport:
    """What a run did and cost: windows or tiles, time in the network, memory."""

    mode: str
    total: int = 0
    skipped: int = 0
    batch_size: int = 1
    oom_retries: int = 0
    network_seconds: float = 0.0
    total_seconds: float = 0.0
    buffer_bytes: int = 0
    peak_device_bytes: int | None = None
    compiled: bool = False

    @property
    def overhead_seconds(self) -> float:
        """Everything but the network: cropping, fusing, copying."""
        return self.total_seconds - self.network_seconds

    def summary(self) -> str:
        unit = "windows" if self.mode == "sliding" else "tiles"
        text = f"{self.mode}: {self.total - self.skipped} of {self.total} {unit} run"
        text += f", {self.total_seconds:.1f} s ({self.network_seconds:.1f} s in the network)"
        text += f", buffers {self.buffer_bytes / 1e6:.0f} MB"
        if self.peak_device_bytes is not None:
            text += f", peak GPU memory {self.peak_device_bytes / 1e6:.0f} MB"
        if self.compiled:
            text += ", compiled"
        if self.oom_retries:
            text += f", {self.oom_retries} out-of-memory retries (batch {self.batch_size})"
        return text


class InferenceOutput(NamedTuple):
    hr: np.ndarray
    lr: np.ndarray | None
    report: InferenceReport


class _Runner:
    """Calls the network on a batch with the options' device, precision, layout and compilation; times it."""

    def __init__(self, network: nn.Module, device: torch.device, options: InferenceOptions, report: InferenceReport):
        self.network, self.device, self.report = network, device, report
        self.dtype = PRECISIONS[options.precision]
        self.compiled = compiling.compiled(network) if options.compile else None
        # A compiled network picks its own layouts; the 3D channels-last layout applies to an eager
        # network of 3D convolutions (a 2D network run slice by slice keeps its own).
        self.channels_last = (
            options.channels_last and self.compiled is None and not any(p.dim() == 4 for p in network.parameters())
        )
        if self.channels_last:
            network.to(memory_format=torch.channels_last_3d)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last_3d)
        start = time.perf_counter()
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            out = self._forward(batch)
        if tuple(out.shape[2:]) != tuple(batch.shape[2:]):
            raise MRSynthError(
                f"the network turned a {tuple(batch.shape[2:])} patch into {tuple(out.shape[2:])}: "
                "it must keep the size"
            )
        out = out.float().contiguous()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.report.network_seconds += time.perf_counter() - start
        return out

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        if self.compiled is None:
            return self.network(batch)
        # One batch shape keeps one compilation: a short last batch is padded with zeros.
        size, full = batch.shape[0], self.report.batch_size
        if size < full:
            batch = torch.cat([batch, batch.new_zeros((full - size, *batch.shape[1:]))])
        try:
            out = self.compiled(batch)[:size]
        except torch.OutOfMemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - any compiler failure: warn and run eager
            compiling.forget(self.network, error)
            self.compiled = None
            return self.network(batch[:size])
        self.report.compiled = True
        return out

    def finish(self, started: float) -> None:
        self.report.total_seconds = time.perf_counter() - started
        if self.device.type == "cuda":
            self.report.peak_device_bytes = int(torch.cuda.max_memory_allocated(self.device))


def _out_of_memory(report: InferenceReport, device: torch.device, what: str) -> None:
    report.oom_retries += 1
    if device.type == "cuda":
        torch.cuda.empty_cache()
    warnings.warn(f"out of GPU memory: retrying with {what}", stacklevel=3)


def _as_tensor(inputs: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = inputs.detach().cpu() if isinstance(inputs, torch.Tensor) else torch.from_numpy(np.asarray(inputs))
    if tensor.ndim != 4:
        raise ValueError(f"inputs must be [C, SI, AP, LR], got shape {tuple(tensor.shape)}")
    return tensor.float().contiguous()


def _pad_end(tensor: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Reflect-pad the spatial axes at their end up to ``shape`` (numpy reflects repeatedly if needed)."""
    pads = [(0, 0)] + [(0, max(0, t - n)) for n, t in zip(tensor.shape[1:], shape, strict=True)]
    if not any(after for _, after in pads):
        return tensor
    mode = "reflect" if min(tensor.shape[1:]) > 1 else "edge"
    return torch.from_numpy(np.pad(tensor.numpy(), pads, mode=mode))


def _check_lr(shape: Sequence[int], slice_factor: int) -> None:
    if shape[2] % slice_factor:
        raise MRSynthError(
            f"the volume's length {shape[2]} along LR is not a multiple of the slice factor {slice_factor}: "
            "pad the LR axis first (mrsynth.synthesis.synthesize does this)"
        )


def _check_mask(mask: np.ndarray | None, shape: Sequence[int]) -> np.ndarray | None:
    if mask is None:
        return None
    if tuple(mask.shape) != tuple(shape):
        raise MRSynthError(
            f"the body mask has shape {tuple(mask.shape)}, the volume {tuple(shape)}: give a mask on the volume's grid"
        )
    return np.asarray(mask, dtype=bool)


def sliding_window(
    inputs: np.ndarray | torch.Tensor,
    network: nn.Module,
    patch: Sequence[int],
    stride: Sequence[int],
    *,
    options: InferenceOptions | None = None,
    lr_kernel: LrKernels | None = None,
    slice_factor: int = SLICE_FACTOR,
    mask: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> InferenceOutput:
    """Gaussian-weighted sliding-window inference; returns HR ``[C_out, SI, AP, LR]``, LR or None, report.

    With ``lr_kernel`` each window that starts at a multiple of ``slice_factor`` along LR is also
    downsampled (offset 0) and accumulated on the thick grid with the Gaussian reduced to thick slices
    (mean over each group of ``slice_factor``), so sTSE_HR and sTSE_LR are fused at once; the LR
    length of ``inputs`` and the patch must then be multiples of ``slice_factor``. ``lr_kernel`` may
    also map patch configurations (LR offsets, section IV.C) to their own kernels, e.g. {0: k0,
    1: k1, 2: k2, -1: k3} for configurations k..k+3 at LR stride 1: a window starting at 4t + o is
    then reduced with the kernel of offset o and its block m put on thick slice t + m (see
    ``highlow.lr_configurations``). Axes shorter than
    the patch are reflect-padded at their end and cropped back. With ``options.skip_background``,
    windows holding no voxel of ``mask`` (paper order, the volume's shape) are not run. ``progress(done,
    total)`` is called with the number of windows after each batch; an exception it raises
    (``Cancelled``) stops the work.
    """
    started = time.perf_counter()
    device = torch.device(device)
    options = (options or InferenceOptions(mode="sliding")).checked(device)
    x = _as_tensor(inputs)
    patch = tuple(int(p) for p in patch)
    stride = check_stride(stride, patch, slice_factor if lr_kernel is not None else None)
    shape = tuple(x.shape[1:])
    mask = _check_mask(mask, shape)
    fuse_lr = lr_kernel is not None
    configurations = lr_configurations(lr_kernel, slice_factor) if fuse_lr else {}
    phases = {offset % slice_factor: offset for offset in configurations}
    if fuse_lr:
        _check_lr(shape, slice_factor)
        if patch[2] % slice_factor:
            raise MRSynthError(
                f"the patch's LR size {patch[2]} is not a multiple of the slice factor {slice_factor}, so its "
                "output cannot be reduced to thick slices: fix the model's patch"
            )
    padded = tuple(max(n, p) for n, p in zip(shape, patch, strict=True))
    x = _pad_end(x, padded)
    starts = [window_starts(n, p, s) for n, p, s in zip(padded, patch, stride, strict=True)]
    windows = list(itertools.product(*starts))
    report = InferenceReport(mode="sliding", total=len(windows), batch_size=options.batch_size)
    if options.skip_background and mask is not None:
        inside = np.zeros(padded, dtype=bool)
        inside[: shape[0], : shape[1], : shape[2]] = mask
        keep = boxes_touching(inside, patch, windows)
        windows = [w for w, k in zip(windows, keep, strict=True) if k]
        report.skipped = report.total - len(windows)
    report.batch_size = max(1, min(options.batch_size, len(windows)))

    buffers = device if options.buffers_on_device else torch.device("cpu")
    x = x.to(buffers)
    weights = torch.from_numpy(gaussian_weights(patch)).to(buffers)
    # With every window run the weight sums are separable (a product grid of windows, a separable
    # Gaussian): built from 1D sums at once instead of one addition per window.
    separable = report.skipped == 0
    profiles = [gaussian_weights((p,)) for p in patch]
    hr_weight = (
        _outer([_axis_sum(profiles[a], starts[a], padded[a]) for a in range(3)], buffers)
        if separable
        else torch.zeros(padded, device=buffers)
    )
    hr_sum: torch.Tensor | None = None
    if fuse_lr:
        kernels = torch.zeros((slice_factor, slice_factor), device=device)  # one row per phase of the start
        for phase, offset in phases.items():
            kernels[phase] = torch.as_tensor(configurations[offset], dtype=torch.float32)
        thick_patch = patch[2] // slice_factor
        lr_weights = weights.reshape(*patch[:2], thick_patch, slice_factor).mean(-1)
        lr_shape = (*padded[:2], padded[2] // slice_factor)
        if separable:
            thick_profile = profiles[2].reshape(thick_patch, slice_factor).mean(-1)
            thick_starts = [
                (c - phases[c % slice_factor]) // slice_factor for c in starts[2] if c % slice_factor in phases
            ]
            lr_axes = [_axis_sum(profiles[a], starts[a], padded[a]) for a in range(2)]
            lr_weight = _outer([*lr_axes, _axis_sum(thick_profile, thick_starts, lr_shape[2])], buffers)
        else:
            lr_weight = torch.zeros(lr_shape, device=buffers)
        lr_sum: torch.Tensor | None = None
    run = _Runner(network, device, options, report)

    done, size = 0, report.batch_size
    with torch.inference_mode():
        while done < len(windows):
            batch = windows[done : done + size]
            crops = torch.stack([x[:, a : a + patch[0], b : b + patch[1], c : c + patch[2]] for a, b, c in batch])
            try:
                out = run(crops)
                if fuse_lr:
                    batch_kernels = kernels[[c % slice_factor for _, _, c in batch]]
                    lr_out = downsample_lr(out, batch_kernels, slice_factor)
            except torch.OutOfMemoryError:
                if size == 1:
                    raise MRSynthError(
                        "out of GPU memory with a single window: use --device cpu, --precision float16 or a GPU "
                        "with more free memory"
                    ) from None
                size = max(1, size // 2)
                report.batch_size = size
                _out_of_memory(report, device, f"batches of {size} windows")
                continue
            out = out.to(buffers)
            if hr_sum is None:
                hr_sum = torch.zeros((out.shape[1], *padded), device=buffers)
                if fuse_lr:
                    lr_sum = torch.zeros((out.shape[1], *lr_shape), device=buffers)
            if fuse_lr:
                lr_out = lr_out.to(buffers)
            for item, (a, b, c) in enumerate(batch):
                region = (slice(a, a + patch[0]), slice(b, b + patch[1]), slice(c, c + patch[2]))
                hr_sum[(slice(None), *region)].addcmul_(out[item], weights)
                if not separable:
                    hr_weight[region] += weights
                if fuse_lr and c % slice_factor in phases:
                    t = (c - phases[c % slice_factor]) // slice_factor
                    thick = (slice(a, a + patch[0]), slice(b, b + patch[1]), slice(t, t + thick_patch))
                    lr_sum[(slice(None), *thick)].addcmul_(lr_out[item], lr_weights)
                    if not separable:
                        lr_weight[thick] += lr_weights
            done += len(batch)
            if progress is not None:
                progress(done, len(windows))

    if hr_sum is None:  # every window skipped: all background
        channels = 1
        hr_sum = torch.zeros((channels, *padded))
        lr_sum = torch.zeros((channels, *lr_shape)) if fuse_lr else None
    report.buffer_bytes = sum(t.numel() * 4 for t in (x, hr_sum, hr_weight) + ((lr_sum, lr_weight) if fuse_lr else ()))
    hr = _normalise(hr_sum, hr_weight)[:, : shape[0], : shape[1], : shape[2]]
    lr = _normalise(lr_sum, lr_weight)[:, : shape[0], : shape[1], : shape[2] // slice_factor] if fuse_lr else None
    run.finish(started)
    return InferenceOutput(hr, lr, report)


def _axis_sum(profile: np.ndarray, starts: Sequence[int], length: int) -> np.ndarray:
    """The 1D weight profile summed over the window starts along one axis."""
    total = np.zeros(length)
    for start in starts:
        total[start : start + profile.size] += profile
    return total


def _outer(axes: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.einsum("i,j,k->ijk", *axes).astype(np.float32)).to(device)


def _normalise(total: torch.Tensor, weight: torch.Tensor) -> np.ndarray:
    """Weighted mean; voxels no window reached (skipped background) are 0."""
    covered = weight > 0
    return torch.where(covered, total / torch.where(covered, weight, 1), 0).cpu().numpy()


def full_context(
    inputs: np.ndarray | torch.Tensor,
    network: nn.Module,
    *,
    options: InferenceOptions | None = None,
    halo: Sequence[int] | None = None,
    lr_kernel: LrKernels | None = None,
    slice_factor: int = SLICE_FACTOR,
    mask: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> InferenceOutput:
    """Overlap-tile inference equal to one pass of the network over the whole volume.

    Each tile is a core of at most ``options.tile`` voxels (default: ``plan_tiles`` within
    ``options.memory_gb``) plus ``halo`` voxels of context on each side (clipped at the volume border,
    where the network's own padding sees what it would see on the whole volume); only the core is
    kept. With ``halo`` >= half the receptive field (the default, from ``network.receptive_field()``)
    a core voxel's output depends on nothing the cut changed. The network must be in eval mode
    (BatchNorm then acts voxel by voxel). sTSE_LR, when ``lr_kernel`` is given, is ``downsample_lr``
    of the assembled HR with configuration k's (offset 0) kernel. With ``options.skip_background``
    tiles whose core holds no voxel of ``mask`` are not run (their core is 0). On CUDA out-of-memory
    the tiles are re-planned smaller. ``progress(done, total)`` counts tiles.
    """
    started = time.perf_counter()
    device = torch.device(device)
    options = (options or InferenceOptions()).checked(device)
    x = _as_tensor(inputs)
    halo = tuple(int(h) for h in (default_halo(network) if halo is None else halo))
    shape = tuple(x.shape[1:])
    mask = _check_mask(mask, shape)
    if lr_kernel is not None:
        _check_lr(shape, slice_factor)
    # Reflection padding inside the network needs each axis longer than its dilation (<= halo).
    padded = tuple(max(n, h + 1) for n, h in zip(shape, halo, strict=True))
    x = _pad_end(x, padded)
    report = InferenceReport(mode="full-context")
    run = _Runner(network, device, options, report)
    plan = options.tile or plan_tiles(padded, halo, tile_budget(network, options.memory_gb))
    while True:
        tiles = list(itertools.product(*(cores(n, t) for n, t in zip(padded, plan, strict=True))))
        try:
            hr = _run_tiles(x, run, tiles, halo, padded, mask if options.skip_background else None, report, progress)
            break
        except torch.OutOfMemoryError:
            largest = math.prod(max(_extent(c, h, n) for c in axis) for axis, h, n in zip(_axes(tiles), halo, padded))
            budget = int(largest * _OOM_SHRINK)
            try:
                plan = plan_tiles(padded, halo, budget)
            except MRSynthError:
                raise MRSynthError(
                    "out of GPU memory even with the smallest tiles the network's context allows: use --device cpu"
                ) from None
            _out_of_memory(report, device, f"tiles of at most {budget} voxels")
    report.buffer_bytes = (x.numel() + hr.size) * 4
    hr = hr[:, : shape[0], : shape[1], : shape[2]]
    lr = None
    if lr_kernel is not None:
        kernel = lr_configurations(lr_kernel, slice_factor)[0]
        lr = downsample_lr(torch.from_numpy(np.ascontiguousarray(hr)), kernel, slice_factor).numpy()
    run.finish(started)
    return InferenceOutput(hr, lr, report)


def _axes(tiles: list[tuple[tuple[int, int], ...]]) -> list[set[tuple[int, int]]]:
    return [{tile[axis] for tile in tiles} for axis in range(3)]


def _extent(core: tuple[int, int], halo: int, length: int) -> int:
    return min(length, core[1] + halo) - max(0, core[0] - halo)


def _run_tiles(
    x: torch.Tensor,
    run: _Runner,
    tiles: list[tuple[tuple[int, int], ...]],
    halo: Sequence[int],
    padded: Sequence[int],
    mask: np.ndarray | None,
    report: InferenceReport,
    progress: Progress | None,
) -> np.ndarray:
    report.total, report.skipped = len(tiles), 0
    hr: np.ndarray | None = None
    with torch.inference_mode():
        for done, core in enumerate(tiles, start=1):
            target = tuple(slice(start, stop) for start, stop in core)
            if mask is not None and not mask[tuple(slice(a, min(b, n)) for (a, b), n in zip(core, mask.shape))].any():
                report.skipped += 1
            else:
                lows = [max(0, start - h) for (start, _), h in zip(core, halo, strict=True)]
                highs = [min(n, stop + h) for (_, stop), h, n in zip(core, halo, padded, strict=True)]
                out = run(x[None, :, lows[0] : highs[0], lows[1] : highs[1], lows[2] : highs[2]])[0]
                if hr is None:
                    hr = np.zeros((out.shape[0], *padded), dtype=np.float32)
                keep = tuple(slice(start - low, stop - low) for (start, stop), low in zip(core, lows, strict=True))
                hr[(slice(None), *target)] = out[(slice(None), *keep)].cpu().numpy()
            if progress is not None:
                progress(done, len(tiles))
    return np.zeros((1, *padded), dtype=np.float32) if hr is None else hr


def infer(
    inputs: np.ndarray | torch.Tensor,
    network: nn.Module,
    options: InferenceOptions,
    *,
    patch: Sequence[int],
    stride: Sequence[int],
    lr_kernel: LrKernels | None = None,
    slice_factor: int = SLICE_FACTOR,
    mask: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> InferenceOutput:
    """Run ``options.mode``; ``patch`` and ``stride`` are the model's (``options.stride`` overrides)."""
    common = {"lr_kernel": lr_kernel, "slice_factor": slice_factor, "mask": mask, "device": device}
    if options.mode == "sliding":
        chosen = stride if options.stride is None else options.stride
        return sliding_window(inputs, network, patch, chosen, options=options, progress=progress, **common)
    return full_context(inputs, network, options=options, progress=progress, **common)
