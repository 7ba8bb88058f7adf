"""Training the MR feature encoder (paper 001, section 3.1) in the foundation's resumable loop.

The autoencoder learns to reconstruct 2D MR patches of any contrast: slices of real scans (files
or glob patterns in ``data.<split>.volumes``) and of volumes simulated by ``mrsynth.simulate`` from
label maps (``data.<split>.label_maps``; the word ``bundled-phantom`` is the BrainWeb phantom).
Each volume is divided by its 99th percentile inside its body mask (Otsu, as everywhere in the
project), then ``slices_per_axis`` evenly spaced slices are taken along each of the three axes
within the body, cropped to the body. Patches are random crops of a random slice (zero-padded
where a slice is smaller), randomly flipped and rotated by multiples of 90 degrees; the loss is
the mean squared error in tanh's range (paper 001 used MSE for the autoencoder too), against the
input clipped to ``[0, intensity_range]``.
"""

from __future__ import annotations

import glob
import json
import math
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import ModelInfo
from .data import RandomSampler
from .errors import MRSynthError
from .masks import body_mask, normalise_p99
from .training import RUN_DEFAULTS, Trainer, train
from .volume_io import read_volume, to_paper

ENCODER_DEFAULTS: dict[str, Any] = {
    "task": "encoder",
    "name": "my-feature-encoder",
    "version": "1",
    "data": {
        "train": {"volumes": [], "label_maps": []},
        "val": {"volumes": [], "label_maps": []},
        "atlas": "synthseg",  # of the label maps (the bundled phantom is always brainweb)
        "simulated_contrasts": ["GE_aOP", "GE_aIP", "TSE_HR", "TSE_T2_HR"],
        "slices_per_axis": 12,
    },
    "model": {"architecture": "ConvAutoencoder", "width": 16, "depth": 5, "max_width": 64, "intensity_range": 1.25},
    "patch": [128, 128],
    "batch_size": 16,
    "learning_rate": 1.0e-3,
    "lr_schedule": "cosine",
    "weight_decay": 0.0,
    "iterations": 2000,
    "epoch_patches": 1600,
    "val_patches": 256,
    **RUN_DEFAULTS,
}
PHANTOM = "bundled-phantom"
BODY_MARGIN = 4


def _expand(patterns: list[str], what: str) -> list[str]:
    """Files named by ``patterns`` (globs allowed), each pattern required to match something."""
    files: list[str] = []
    for pattern in patterns:
        if pattern == PHANTOM:
            files.append(pattern)
            continue
        found = sorted(glob.glob(str(Path(pattern).expanduser())))
        if not found:
            raise MRSynthError(f"{what} {pattern} matches no file: check the path in the data config")
        files += found
    return files


def volume_slices(volume: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` evenly spaced slices per axis of a p99-normalised volume, inside and cropped to its body."""
    mask = body_mask(volume)
    normalised = normalise_p99(volume, mask)[0].astype(np.float32)
    box = [(max(0, int(np.min(idx)) - BODY_MARGIN), int(np.max(idx)) + BODY_MARGIN + 1) for idx in np.nonzero(mask)]
    cropped = normalised[tuple(slice(lo, hi) for lo, hi in box)]
    slices = []
    for axis in range(3):
        n = cropped.shape[axis]
        # the central 80% of the body along this axis: the ends hold little but edge and noise
        positions = np.unique(np.linspace(0.1 * n, 0.9 * n - 1, count).round().astype(int))
        slices += [np.ascontiguousarray(np.take(cropped, int(p), axis=axis)) for p in positions]
    return slices


def _simulated(label_map: str, atlas: str, contrasts: list[str], seed: int) -> list[np.ndarray]:
    from .simulate import bundled_phantom, simulate

    labels = bundled_phantom() if label_map == PHANTOM else label_map
    images = simulate(labels, "brainweb" if label_map == PHANTOM else atlas, seed=seed)
    missing = sorted(set(contrasts) - set(images))
    if missing:
        raise MRSynthError(f"the simulator gives no {', '.join(missing)}: choose from {', '.join(sorted(images))}")
    return [to_paper(images[name]) for name in contrasts]


def slice_bank(split: dict[str, list[str]], data: dict[str, Any], seed: int) -> tuple[list[np.ndarray], list[str]]:
    """Slices of a split's real and simulated volumes, and the names of the sources they came from."""
    count = int(data["slices_per_axis"])
    slices: list[np.ndarray] = []
    sources: list[str] = []
    for path in _expand(list(split.get("volumes", [])), "volume"):
        slices += volume_slices(to_paper(read_volume(path, Path(path).name)), count)
        sources.append(Path(path).name)
    for index, label_map in enumerate(_expand(list(split.get("label_maps", [])), "label map")):
        contrasts = list(data["simulated_contrasts"])
        for volume in _simulated(label_map, str(data["atlas"]), contrasts, seed + index):
            slices += volume_slices(volume, count)
        sources.append(f"simulated from {Path(label_map).name}")
    return slices, sources


class SliceSampler(RandomSampler):
    """Random patches of random slices, with flips and 90-degree rotations; resumable."""

    def __init__(self, slices: list[np.ndarray], patch: tuple[int, int], rng: np.random.Generator):
        if not slices:
            raise MRSynthError("no slices to train on: give volumes or label maps in data.train")
        self.slices, self.patch, self.rng = slices, patch, rng

    def crop(self, image: np.ndarray) -> np.ndarray:
        out = np.zeros(self.patch, np.float32)
        starts = [int(self.rng.integers(0, max(1, n - p + 1))) for n, p in zip(image.shape, self.patch, strict=True)]
        piece = image[starts[0] : starts[0] + self.patch[0], starts[1] : starts[1] + self.patch[1]]
        offsets = [(p - n) // 2 for n, p in zip(piece.shape, self.patch, strict=True)]
        out[offsets[0] : offsets[0] + piece.shape[0], offsets[1] : offsets[1] + piece.shape[1]] = piece
        return out

    def draw(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, None]:
        """(patches [B, 1, H, W], the same patches, no kernel): the trainer's (input, target, kernel)."""
        patches = []
        for _ in range(batch_size):
            image = self.slices[int(self.rng.integers(len(self.slices)))]
            image = np.rot90(image, int(self.rng.integers(4)))
            if self.rng.integers(2):
                image = image[:, ::-1]
            patches.append(self.crop(image))
        x = np.stack(patches)[:, None]
        return x, x, None


class EncoderTrainer(Trainer):
    """The foundation's loop (logs, checkpoints, resume) with slice data, the autoencoder and MSE."""

    def __init__(self, config: dict[str, Any], run_dir: str | Path):
        self._open_run(config, run_dir)
        data = config["data"]
        self.patch = tuple(int(p) for p in config["patch"])
        if len(self.patch) != 2:
            raise MRSynthError(f"the encoder trains on 2D patches: give patch as [H, W], not {list(self.patch)}")
        seed = int(config["seed"])
        self.train_slices, self.train_sources = slice_bank(data["train"], data, seed)
        self.val_slices, self.val_sources = slice_bank(data["val"], data, seed + 1000)
        self.val_cases = self.val_sources  # early stopping needs to know whether there is validation data
        model = config["model"]
        self.arguments = {
            "in_channels": 1,
            "width": int(model["width"]),
            "depth": int(model["depth"]),
            "max_width": int(model["max_width"]),
            "intensity_range": float(model["intensity_range"]),
        }
        seed = self._start_optimisation(model["architecture"])
        self.sampler = SliceSampler(self.train_slices, self.patch, np.random.default_rng(seed))
        self.val_batches = self._validation_batches(seed + 1)

    def _validation_batches(self, seed: int) -> list[tuple[np.ndarray, np.ndarray, None]]:
        if not self.val_slices:
            return []
        sampler = SliceSampler(self.val_slices, self.patch, np.random.default_rng(seed))
        return self._batches_from(sampler)

    def loss(self, x: np.ndarray, y: np.ndarray, k: None, flip: bool) -> torch.Tensor:
        """MSE in tanh's range between the reconstruction and the clipped input (flips are in the sampler)."""
        xt = torch.from_numpy(x).to(self.device)
        network = self.network
        target = network.to_internal(xt.clamp(0.0, network.intensity_range))
        return torch.nn.functional.mse_loss(self.forward(network.reconstruct, xt), target)

    def model_info(self) -> ModelInfo:
        return ModelInfo(
            name=str(self.config["name"]),
            version=str(self.config["version"]),
            architecture=self.config["model"]["architecture"],
            arguments=self.arguments,
            inputs=["MR image (any contrast)"],
            output="MR image (autoencoder reconstruction)",
            voxel_size=[1.0, 1.0, 1.0],
            patch=[8, *self.patch],
            stride=[8, *(p // 2 for p in self.patch)],
            approach="autoencoder",
            task="feature-encoder",
            normalisation={
                "method": "p99",
                "description": "input divided by its 99th percentile inside the body mask; the network maps "
                f"[0, {self.arguments['intensity_range']}] onto tanh's [-1, 1] itself; output in input units",
            },
            training={
                "config": json.loads(json.dumps(self.config)),
                "train_cases": self.train_sources,
                "val_cases": self.val_sources,
                "train_slices": len(self.train_slices),
                "val_slices": len(self.val_slices),
                "iterations": self.iteration,
                "best_val_loss": self.best_val,
                "best_val_rmse_p99": math.sqrt(self.best_val) * self.arguments["intensity_range"] / 2
                if math.isfinite(self.best_val)
                else None,
            },
        )


# ``training.train`` with this task's defaults and trainer.
train_encoder = partial(train, defaults=ENCODER_DEFAULTS, trainer_class=EncoderTrainer)


def reconstruction_errors(network: torch.nn.Module, slices: list[np.ndarray]) -> dict[str, float]:
    """Held-out reconstruction error of whole slices in p99 units: MAE, RMSE and PSNR (peak = intensity range).

    The target is the slice clipped to ``[0, intensity_range]`` as in training; errors are averaged
    over every pixel of every slice.
    """
    peak = float(network.intensity_range)
    absolute, squared, pixels = 0.0, 0.0, 0
    network.eval()
    with torch.no_grad():
        for image in slices:
            x = torch.from_numpy(np.ascontiguousarray(image))[None, None]
            out = network(x)
            diff = out - x.clamp(0.0, peak)
            absolute += float(diff.abs().sum())
            squared += float((diff**2).sum())
            pixels += diff.numel()
    mse = squared / pixels
    return {"mae": absolute / pixels, "rmse": math.sqrt(mse), "psnr": 10 * math.log10(peak**2 / mse)}
