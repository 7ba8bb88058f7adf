"""Super-resolution training (paper 003, sections 3.1-3.2) in the foundation's resumable loop.

A case is a folder of thin-slice volumes (``data.contrasts``, e.g. the noise-free ``TSE_HR`` and
``TSE_T2_HR`` that ``mrsynth simulate`` writes, or real 1 mm scans) and a body mask. Patches of
32x32x32 voxels are taken on a grid of stride 16 (as the paper) wherever they hold body, in a
shuffled order; each gets a slice axis drawn from ``slice_axes`` and a random thick-slice phase.
Its input is made by the forward model of ``thick_slices`` (anti-aliasing filter, decimation, cubic
interpolation back to the thin grid) on a block with enough context along the slice axis that the
patch equals what the whole volume would give. Then the patch is turned so that the slice axis is
the network's first spatial axis, as ``superres`` does at inference: one task to learn instead of
one per axis. The loss is L2 between the network output
(interpolated input + residual) and the thin patch. With ``data.joint_contrasts`` false every
contrast is a separate single-channel sample (a single-contrast model trained on several
contrasts); with true they are the channels of one multi-contrast sample. For a two-echo model
(DESS S1, S2), ``echo_ratio_weight`` adds ``echo_ratio_loss`` (``echo_ratio_form`` cross or log), which
keeps the echoes' ratio (and so T2) right, and ``model.ratio_residual`` carries S1's residual into S2 at
their interpolated ratio (``networks.MRSR``), so that S2's own residual only has to change that ratio.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import ModelInfo
from .data import find_volume
from .errors import MRSynthError
from .masks import normalise_p99
from .thick_slices import AXIS_NAMES, FILTER_ORDER, NETWORK_SLICE_AXIS, check_factor, make_thick, parse_axis, to_thin
from .training import RUN_DEFAULTS, Trainer, _case_dirs, train
from .volume_io import check_same_grid, paper_spacing, read_volume, to_paper

SR_DEFAULTS: dict[str, Any] = {
    "task": "superres",
    "name": "my-superres-model",
    "version": "1",
    "data": {"train": [], "val": [], "contrasts": ["TSE_HR"], "mask": "head_mask", "joint_contrasts": False},
    "model": {"architecture": "MRSR", "depth": 20, "width": 64, "ratio_residual": False},
    "slice_factor": 4,
    "slice_axes": ["SI", "AP", "LR"],
    "patch": [32, 32, 32],
    "stride": [16, 16, 16],
    "min_body_fraction": 0.1,
    "batch_size": 8,
    "learning_rate": 1.0e-4,
    "lr_schedule": "constant",
    "weight_decay": 0.0,
    "iterations": 1000,
    "epoch_patches": 400,
    "val_patches": 64,
    "echo_ratio_weight": 0.0,
    "echo_ratio_form": "cross",
    **RUN_DEFAULTS,
}


SINGLE_CONTRAST_INPUT = "thick-slice image (any contrast)"
SINGLE_CONTRAST_OUTPUT = "thin-slice image (same contrast)"


ECHO_RATIO_FORMS = ("cross", "log")
# log form: voxels where either target echo is below this (in units of its 99th percentile) are left
# out; air and bone, where the ratio is noise, would otherwise dominate a loss that weighs every voxel alike
LOG_RATIO_FLOOR = 0.02


def echo_ratio_loss(output: torch.Tensor, target: torch.Tensor, form: str = "cross") -> torch.Tensor:
    """Echo-ratio error of two-channel (S1, S2) batches [B, 2, ...]; zero where the output's ratio is the target's.

    T2 from DESS is a function of S2 / S1 (``dess.estimate_t2``), and L2 alone lets the echoes err
    independently. ``cross``: mean squared ``o2 t1 - o1 t2``, which needs no division, so it stays
    finite where the echoes near zero, but weighs each voxel by ``t1 t2`` and so little in CSF, where
    S1 is dim. ``log``: mean squared difference of ``ln(o2 / o1)`` and ``ln(t2 / t1)`` over the voxels
    where both target echoes exceed ``LOG_RATIO_FLOOR``: every tissue alike, and proportional to the
    relative T2 error (d T2 / T2 = d ln(ratio) T2 / (2 (TR - TE))). Both are our addition to paper
    003, which trained with L2 only.
    """
    if output.shape[1] != 2 or target.shape != output.shape:
        raise MRSynthError(f"the echo-ratio loss needs two-echo batches [B, 2, ...], not {tuple(output.shape)}")
    if check_echo_ratio_form(form) == "cross":
        return torch.mean((output[:, 1] * target[:, 0] - output[:, 0] * target[:, 1]) ** 2)

    def log_ratio(echoes: torch.Tensor) -> torch.Tensor:
        tiny = 1e-3  # an echo at or below zero counts as this, so the loss stays finite and pushes it up
        return torch.log(echoes[:, 1].clamp_min(tiny)) - torch.log(echoes[:, 0].clamp_min(tiny))

    # a masked mean rather than indexing, so that no step waits on the device to count the voxels
    valid = ((target[:, 0] > LOG_RATIO_FLOOR) & (target[:, 1] > LOG_RATIO_FLOOR)).to(output.dtype)
    return ((log_ratio(output) - log_ratio(target)) ** 2 * valid).sum() / valid.sum().clamp_min(1.0)


def check_echo_ratio_form(form: str) -> str:
    """``form`` if it is one of ``ECHO_RATIO_FORMS``; otherwise an error that lists them."""
    if form not in ECHO_RATIO_FORMS:
        raise MRSynthError(f"unknown echo_ratio_form {form!r}: choose one of {', '.join(ECHO_RATIO_FORMS)}")
    return form


class SRCase:
    """One subject's thin volumes [C, SI, AP, LR], each divided by its 99th percentile in the mask."""

    def __init__(self, folder: str | Path, contrasts: list[str], mask_name: str):
        folder = Path(folder)
        images = {n: read_volume(find_volume(folder, n), f"{folder.name}/{n}") for n in contrasts}
        check_same_grid(images)
        mask = to_paper(read_volume(find_volume(folder, mask_name), f"{folder.name}/{mask_name}", check=False)) > 0
        if not mask.any():
            raise MRSynthError(f"case {folder}: {mask_name} is empty: give a body mask")
        self.name = folder.name
        self.mask = mask
        self.volumes = np.stack([normalise_p99(to_paper(images[n]), mask)[0] for n in contrasts]).astype(np.float32)
        self.spacing = paper_spacing(images[contrasts[0]])


def patch_corners(mask: np.ndarray, patch: tuple[int, ...], stride: tuple[int, ...], min_fraction: float) -> np.ndarray:
    """Corners of the stride grid whose patch holds at least ``min_fraction`` body voxels."""
    grids = [sorted(set(range(0, n - p + 1, s)) | {n - p}) for n, p, s in zip(mask.shape, patch, stride, strict=True)]
    corners = np.stack(np.meshgrid(*grids, indexing="ij"), -1).reshape(-1, 3)
    counts = np.cumsum(np.cumsum(np.cumsum(np.pad(mask, ((1, 0), (1, 0), (1, 0))), 0), 1), 2, dtype=np.int64)
    a, (p0, p1, p2) = corners, patch
    inside = (
        counts[a[:, 0] + p0, a[:, 1] + p1, a[:, 2] + p2]
        - counts[a[:, 0], a[:, 1] + p1, a[:, 2] + p2]
        - counts[a[:, 0] + p0, a[:, 1], a[:, 2] + p2]
        - counts[a[:, 0] + p0, a[:, 1] + p1, a[:, 2]]
        + counts[a[:, 0], a[:, 1], a[:, 2] + p2]
        + counts[a[:, 0], a[:, 1] + p1, a[:, 2]]
        + counts[a[:, 0] + p0, a[:, 1], a[:, 2]]
        - counts[a[:, 0], a[:, 1], a[:, 2]]
    )
    return corners[inside >= min_fraction * np.prod(patch)]


def simulate_patch(volume: np.ndarray, corner: np.ndarray, patch: tuple[int, ...], axis: int, factor: int, phase: int):
    """(input, target) of one patch: the thick-slice forward model on a block with context along ``axis``.

    Thick groups start ``phase`` thin slices into the volume (the volume is taken to begin there; a
    patch that starts before it gets phase 0); the block reaches
    ``FILTER_ORDER + 4 * factor`` thin slices beyond the patch (or the volume's end, where the
    whole-volume model mirrors too), so filter and interpolation see what they would on the whole volume.
    """
    margin = FILTER_ORDER + 4 * factor
    n = volume.shape[axis + 1]
    start = int(corner[axis])
    phase = phase if start >= phase else 0
    lo = start - margin
    lo = phase if lo <= phase else lo - (lo - phase) % factor  # the volume (after the phase) starts a group
    hi = min(n, start + patch[axis] + margin)
    box = [slice(int(c), int(c) + p) for c, p in zip(corner, patch, strict=True)]
    box[axis] = slice(lo, hi)
    block = volume[(slice(None), *box)]
    thin = hi - lo
    low = to_thin(make_thick(block, axis + 1, factor), axis + 1, factor, thin)
    keep = [slice(None)] * 4
    keep[axis + 1] = slice(int(corner[axis]) - lo, int(corner[axis]) - lo + patch[axis])
    return low[tuple(keep)], block[tuple(keep)]


def turn_slice_axis(patch: np.ndarray, axis: int, transpose: bool) -> np.ndarray:
    """A [C, SI, AP, LR] patch with its slice ``axis`` moved to ``NETWORK_SLICE_AXIS``, the other two
    axes kept in order or, with ``transpose``, swapped (a transposed slice is as plausible)."""
    order = [a + 1 for a in range(3) if a != axis]
    order = order[::-1] if transpose else order
    order.insert(NETWORK_SLICE_AXIS, axis + 1)
    return np.ascontiguousarray(np.transpose(patch, (0, *order)))


class SRSampler:
    """Stride-16 patches of every case (and contrast), in a freshly shuffled order each pass."""

    def __init__(self, cases: list[SRCase], config: dict[str, Any], rng: np.random.Generator):
        self.cases, self.rng = cases, rng
        self.patch = tuple(int(p) for p in config["patch"])
        stride = tuple(int(s) for s in config["stride"])
        self.factor = check_factor(int(config["slice_factor"]))
        self.axes = [parse_axis(a) for a in config["slice_axes"]]
        if not self.axes:
            raise MRSynthError("slice_axes is empty: give one or more of SI, AP, LR")
        self.joint = bool(config["data"]["joint_contrasts"])
        self.items: list[tuple[int, int, np.ndarray]] = []
        for index, case in enumerate(cases):
            if any(s < p for s, p in zip(case.mask.shape, self.patch)):
                raise MRSynthError(f"case {case.name} of size {case.mask.shape} is smaller than the patch {self.patch}")
            corners = patch_corners(case.mask, self.patch, stride, float(config["min_body_fraction"]))
            channels = [-1] if self.joint else range(case.volumes.shape[0])
            self.items += [(index, c, corner) for c in channels for corner in corners]
        if not self.items:
            raise MRSynthError("no patch holds enough body: lower min_body_fraction or check the masks")
        self.order = self.rng.permutation(len(self.items))
        self.position = 0

    def draw(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(inputs [B, C, 32, 32, 32], targets [B, C, ...], slice axes [B]) for a batch.

        Every patch is turned so that its slice axis is ``NETWORK_SLICE_AXIS`` (the first),
        its in-plane axes in a random order: the network learns one task, not one per axis.
        """
        xs, ys, axes = [], [], []
        for _ in range(batch_size):
            if self.position == len(self.order):
                self.order, self.position = self.rng.permutation(len(self.items)), 0
            case, channel, corner = self.items[self.order[self.position]]
            self.position += 1
            volume = self.cases[case].volumes
            volume = volume if channel < 0 else volume[channel : channel + 1]
            axis = self.axes[self.rng.integers(len(self.axes))]
            x, y = simulate_patch(volume, corner, self.patch, axis, self.factor, int(self.rng.integers(self.factor)))
            transpose = bool(self.rng.integers(2))
            x, y = turn_slice_axis(x, axis, transpose), turn_slice_axis(y, axis, transpose)
            xs.append(x)
            ys.append(y)
            axes.append(axis)
        return np.stack(xs), np.stack(ys), np.asarray(axes)

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "order": self.order.tolist(), "position": self.position}

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order = np.asarray(state["order"])
        self.position = int(state["position"])


class SRTrainer(Trainer):
    """The foundation's loop (logs, checkpoints, resume) with super-resolution data, model and loss.

    Only the set-up, the sampler, the loss and the model description differ from High-to-low;
    ``run``, ``save``, ``restore`` and ``validate`` are the foundation's.
    """

    def __init__(self, config: dict[str, Any], run_dir: str | Path):
        self._open_run(config, run_dir)
        data = config["data"]
        contrasts = list(data["contrasts"])
        if not contrasts:
            raise MRSynthError("data.contrasts is empty: name the thin volumes of each case (e.g. TSE_HR)")
        self.patch = tuple(int(p) for p in config["patch"])
        self.train_cases = [SRCase(d, contrasts, data["mask"]) for d in _case_dirs(data["train"], "train")]
        self.val_cases = [SRCase(d, contrasts, data["mask"]) for d in _case_dirs(data["val"], "val")]
        self.voxel_size = [float(v) for v in np.median([c.spacing for c in self.train_cases], axis=0)]
        channels = len(contrasts) if data["joint_contrasts"] else 1
        self.echo_ratio_weight = float(config["echo_ratio_weight"])
        if self.echo_ratio_weight and channels != 2:
            raise MRSynthError(
                "echo_ratio_weight needs a two-echo model: set data.joint_contrasts=true and two data.contrasts "
                "(e.g. [DESS_S1, DESS_S2]), or echo_ratio_weight=0"
            )
        self.echo_ratio_form = check_echo_ratio_form(str(config["echo_ratio_form"]))
        model = config["model"]
        self.arguments = {
            "in_channels": channels,
            "out_channels": channels,
            "depth": int(model["depth"]),
            "width": int(model["width"]),
        }
        if model["ratio_residual"]:  # stored only when set, so older checkpoints' arguments stay as they were
            self.arguments["ratio_residual"] = True
        seed = self._start_optimisation(model["architecture"])
        self.sampler = self._sampler(self.train_cases, np.random.default_rng(seed))
        self.val_batches = self._validation_batches(seed + 1)

    def _sampler(self, cases: list, rng: np.random.Generator, random_offsets: bool = True) -> SRSampler:
        return SRSampler(cases, self.config, rng)

    def loss(self, x: np.ndarray, y: np.ndarray, k: np.ndarray, flip: bool) -> torch.Tensor:
        """L2 between the super-resolved patch and the thin one (``k``, the slice axes, is not needed), plus
        ``echo_ratio_weight`` times the echo-ratio loss of ``echo_ratio_form``."""
        xt, yt = self._on_device(x, y, flip)
        output = self.forward(self.network, xt)
        loss = torch.nn.functional.mse_loss(output, yt)
        if self.echo_ratio_weight:
            loss = loss + self.echo_ratio_weight * echo_ratio_loss(output, yt, self.echo_ratio_form)
        return loss

    def model_info(self) -> ModelInfo:
        data = self.config["data"]
        contrasts = list(data["contrasts"])
        joint = data["joint_contrasts"]
        inputs = [f"{n} (thick)" for n in contrasts] if joint else [SINGLE_CONTRAST_INPUT]
        outputs = contrasts if joint else [SINGLE_CONTRAST_OUTPUT]
        axes = [AXIS_NAMES[parse_axis(a)] for a in self.config["slice_axes"]]
        return ModelInfo(
            name=str(self.config["name"]),
            version=str(self.config["version"]),
            architecture=self.config["model"]["architecture"],
            arguments=self.arguments,
            inputs=inputs,
            output=outputs[0],
            outputs=outputs,
            voxel_size=self.voxel_size,
            patch=list(self.patch),
            stride=[int(s) for s in self.config["stride"]],
            approach="residual-on-interpolation",
            task="super-resolution",
            slice_factor=int(self.config["slice_factor"]),
            slice_axis="any" if len(set(axes)) == 3 else ",".join(sorted(set(axes))),
            normalisation={
                "method": "p99",
                "description": "each input divided by its 99th percentile inside the body mask; outputs in the "
                "same units (mrsynth superres multiplies them back into the input's units)",
            },
            training=self.training_record(),
        )


# ``training.train`` with this task's defaults and trainer.
train_superres = partial(train, defaults=SR_DEFAULTS, trainer_class=SRTrainer)
