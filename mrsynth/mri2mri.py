"""MRI2MRI training (paper 002): a U-Net maps one or more MRI contrasts to another, slice by slice.

As in the paper, a 2D U-Net (``slice_unet.SliceUNet``) is trained on axial slices with a perceptual
loss: the squared difference of a fixed feature network's first-layer activations (here our own MR
feature encoder, ``feature_losses``; the paper used VGG16), plus an optional pixel L1; Adam at
2e-4. Any list of inputs is allowed: one-to-one (T1 -> T2) or many-to-one (T1 + T2 -> FLAIR).

A case is a dict naming a file per contrast (``{"name": "s01", "T1w": "t1.nii.gz", "T2w": ...}``),
all on one grid, co-registered. Every volume is normalised with ``normalisation.normalise_affine``
in the body mask of the last input, so the model does not depend on the scanner's intensity
scale. Training crops (``patch`` = [1, AP, LR]) are centred on random body voxels of random slices
that hold enough body. The run folder, checkpoints, resume and logs are the foundation's
(``training.Trainer``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import ModelInfo
from .data import RandomSampler
from .errors import MRSynthError
from .normalisation import (
    DESCRIPTION,
    LANDMARK_QUANTILES,
    METHOD,
    invariant_mask,
    landmarks,
    normalise_affine,
    standardise,
)
from .ssim_loss import ssim_loss
from .training import RUN_DEFAULTS, Trainer, train
from .volume_io import check_same_grid, paper_spacing, read_volume, to_paper

MRI2MRI_DEFAULTS: dict[str, Any] = {
    "task": "mri2mri",
    "name": "my-mri2mri-model",
    "version": "1",
    # cases: {"name": ..., CONTRAST: path, ...}; every case names each input and the target
    "data": {"train": [], "val": [], "inputs": ["T1w"], "target": "T2w"},
    "model": {"architecture": "SliceUNet", "width": 16, "levels": 4, "batch_norm": True},
    # feature_network: a registered or saved feature encoder (or VGG16/19 state dict); null: pixel L1 only
    # ssim_weight: adds that x (1 - SSIM) (``ssim_loss``, data range 1 = the normalised brain's p99); our addition
    "loss": {"feature_network": "mr-feature-encoder", "layers": [0], "l1_weight": 1.0, "ssim_weight": 0.0},
    "patch": [1, 128, 128],
    "min_body_fraction": 0.3,  # slices whose body area is below this fraction of the largest are not drawn
    # [low, high]: each training crop's input channels get x -> sign(x) |x|^g, log g uniform in [log low, log high]
    # (a stand-in for other scanners' contrast; our addition); null: none
    "input_gamma": None,
    # true: each input's histogram is mapped onto the training subjects' mean landmarks (normalisation.standardise),
    # stored in the model and applied by synthesize; our addition, for scanners whose tissue contrast differs
    "histogram_standardisation": False,
    "batch_size": 8,
    "learning_rate": 2.0e-4,
    "lr_schedule": "constant",
    "weight_decay": 0.0,
    "iterations": 1000,
    "epoch_patches": 400,
    "val_patches": 64,
    **RUN_DEFAULTS,
}


class ContrastCase:
    """One subject's co-registered contrasts, normalised, in paper order, with its slice candidates."""

    def __init__(self, entry: dict[str, str], inputs: list[str], target: str, min_body_fraction: float):
        if not isinstance(entry, dict) or "name" not in entry:
            raise MRSynthError(f"a case is a mapping with a name and a file per contrast, not {entry!r}")
        missing = [c for c in [*inputs, target] if c not in entry]
        if missing:
            raise MRSynthError(f"case {entry['name']} names no file for {', '.join(missing)}: add them to the config")
        self.name = str(entry["name"])
        images = {c: read_volume(entry[c], f"{self.name}/{c}") for c in dict.fromkeys([*inputs, target])}
        check_same_grid(images)
        self.spacing = paper_spacing(images[inputs[0]])
        arrays = {c: to_paper(image) for c, image in images.items()}
        self.mask = invariant_mask(arrays[inputs[-1]])
        self.inputs = np.stack([normalise_affine(arrays[c], self.mask)[0] for c in inputs])
        self.target = normalise_affine(arrays[target], self.mask)[0][None]
        area = self.mask.sum(axis=(1, 2))
        self.slices = np.flatnonzero(area >= min_body_fraction * area.max())

    def landmarks(self) -> list[list[float]]:
        """Each input's histogram landmarks (``normalisation.landmarks``)."""
        return [landmarks(channel, self.mask) for channel in self.inputs]

    def standardise(self, reference: list[list[float]]) -> None:
        """Map each input's histogram onto ``reference`` (one landmark list per input), in place."""
        self.inputs = np.stack([standardise(x, self.mask, r) for x, r in zip(self.inputs, reference, strict=True)])


class SliceSampler(RandomSampler):
    """Random axial crops centred on body voxels, inputs optionally gamma-changed; its RNG state is saved to resume."""

    def __init__(
        self,
        cases: list[ContrastCase],
        patch: tuple[int, ...],
        rng: np.random.Generator,
        input_gamma: tuple[float, float] | None = None,
    ):
        if len(patch) != 3 or patch[0] != 1:
            raise MRSynthError(f"MRI2MRI patches are single axial slices [1, AP, LR], not {list(patch)}")
        if input_gamma is not None and not 0 < input_gamma[0] <= input_gamma[1]:
            raise MRSynthError(f"input_gamma {list(input_gamma)} must be [low, high] with 0 < low <= high")
        self.cases, self.size, self.rng, self.input_gamma = cases, patch[1:], rng, input_gamma

    def _crop(self, case: ContrastCase) -> tuple[np.ndarray, np.ndarray]:
        index = int(self.rng.choice(case.slices))
        rows, cols = np.nonzero(case.mask[index])
        pick = int(self.rng.integers(len(rows)))
        starts = []
        for centre, size, length in zip((rows[pick], cols[pick]), self.size, case.mask.shape[1:], strict=True):
            if size > length:
                raise MRSynthError(f"patch {list(self.size)} exceeds case {case.name}'s slices: use a smaller patch")
            starts.append(int(np.clip(centre - size // 2, 0, length - size)))
        window = (slice(index, index + 1), *(slice(s, s + n) for s, n in zip(starts, self.size, strict=True)))
        inputs = case.inputs[(slice(None), *window)]
        if self.input_gamma is not None:
            low, high = np.log(self.input_gamma)
            gamma = np.exp(self.rng.uniform(low, high, size=(len(inputs), 1, 1, 1)))
            inputs = (np.sign(inputs) * np.abs(inputs) ** gamma).astype(inputs.dtype)
        return inputs, case.target[(slice(None), *window)]

    def draw(self, batch: int) -> tuple[np.ndarray, np.ndarray, None]:
        """``batch`` crops ``[B, C, 1, AP, LR]`` and targets ``[B, 1, 1, AP, LR]``, cases drawn at random."""
        pairs = [self._crop(self.cases[int(self.rng.integers(len(self.cases)))]) for _ in range(batch)]
        return np.stack([x for x, _ in pairs]), np.stack([y for _, y in pairs]), None


class Mri2MriTrainer(Trainer):
    """The foundation's loop (logs, checkpoints, resume) with MRI2MRI data, network and perceptual loss."""

    def __init__(self, config: dict[str, Any], run_dir: str | Path):
        self._open_run(config, run_dir)
        data = config["data"]
        inputs, target = [str(c) for c in data["inputs"]], str(data["target"])
        if not inputs:
            raise MRSynthError("data.inputs is empty: name the input contrasts (e.g. [T1w])")
        if not data["train"]:
            raise MRSynthError("no training cases: set data.train to cases with a file per contrast")
        self.patch = tuple(int(p) for p in config["patch"])
        fraction = float(config["min_body_fraction"])
        self.train_cases = [ContrastCase(e, inputs, target, fraction) for e in data["train"]]
        self.val_cases = [ContrastCase(e, inputs, target, fraction) for e in data["val"]]
        self.voxel_size = [float(v) for v in np.median([c.spacing for c in self.train_cases], axis=0)]
        self.reference_landmarks = None
        if config["histogram_standardisation"]:
            found = np.array([case.landmarks() for case in self.train_cases])  # [case, input, quantile]
            self.reference_landmarks = found.mean(axis=0).tolist()
            for case in self.train_cases + self.val_cases:
                case.standardise(self.reference_landmarks)
        model = config["model"]
        self.arguments = {
            "in_channels": len(inputs),
            "out_channels": 1,
            "width": int(model["width"]),
            "levels": int(model["levels"]),
            "batch_norm": bool(model["batch_norm"]),
        }
        seed = self._start_optimisation(model["architecture"])
        gamma = config["input_gamma"]
        self.sampler = SliceSampler(
            self.train_cases, self.patch, np.random.default_rng(seed), None if gamma is None else tuple(gamma)
        )
        self.val_batches = self._validation_batches(seed + 1)
        self.features = self._feature_network(config["loss"])

    def _feature_network(self, loss: dict[str, Any]) -> torch.nn.Module | None:
        if not loss["feature_network"]:
            return None
        from .feature_losses import load_feature_network

        return load_feature_network(str(loss["feature_network"]), self.device)

    def _sampler(self, cases: list, rng: np.random.Generator, random_offsets: bool = True) -> SliceSampler:
        return SliceSampler(cases, self.patch, rng)

    def loss(self, x: np.ndarray, y: np.ndarray, k: None, flip: bool) -> torch.Tensor:
        """Perceptual loss on the feature network's chosen layers plus ``l1_weight`` x L1 (L1 alone without one),
        plus ``ssim_weight`` x (1 - SSIM)."""
        xt, yt = self._on_device(x[:, :, 0], y[:, :, 0], flip)
        out = self.forward(self.network, xt)
        settings = self.config["loss"]
        if self.features is None:
            loss = F.l1_loss(out, yt)
        else:
            from .feature_losses import perceptual_loss

            layers = [int(layer) for layer in settings["layers"]]
            loss = perceptual_loss(self.features, out, yt, layers=layers, l1_weight=float(settings["l1_weight"]))
        ssim_weight = float(settings["ssim_weight"])
        if ssim_weight:
            loss = loss + ssim_weight * ssim_loss(out, yt)
        return loss

    def model_info(self) -> ModelInfo:
        data = self.config["data"]
        return ModelInfo(
            name=str(self.config["name"]),
            version=str(self.config["version"]),
            architecture=self.config["model"]["architecture"],
            arguments=self.arguments,
            inputs=[str(c) for c in data["inputs"]],
            output=str(data["target"]),
            voxel_size=self.voxel_size,
            patch=list(self.patch),
            stride=list(self.patch),
            approach="slice-2d",
            slice_factor=1,
            normalisation=self._normalisation(),
            training=self.training_record(),
        )

    def _normalisation(self) -> dict[str, Any]:
        record: dict[str, Any] = {"method": METHOD, "description": DESCRIPTION}
        if self.reference_landmarks is not None:
            record["landmarks"] = {"quantiles": list(LANDMARK_QUANTILES), "reference": self.reference_landmarks}
            record["description"] += (
                "; then each input's histogram is mapped onto the training subjects' mean landmarks "
                "(percentiles inside the mask, piecewise linear: normalisation.standardise)"
            )
        return record


# ``training.train`` with this task's defaults and trainer.
train_mri2mri = partial(train, defaults=MRI2MRI_DEFAULTS, trainer_class=Mri2MriTrainer)
