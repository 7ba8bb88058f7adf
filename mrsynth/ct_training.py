"""CT -> MR training of DRUNet (paper 004) in the foundation's resumable loop.

A case is a folder with a CT in Hounsfield units, the MR target and a head mask, e.g. what
``mrsynth simulate --ct`` writes (``CT``, ``TSE_HR``, ``head_mask``). Samples are axial slices (one
SI index; with 2.5D context its neighbours too) cropped to ``crop`` x ``crop`` in-plane around the
head, flipped left-right every other iteration. The target is divided by its 99th percentile in the
head (the project's unit); the CT stays in HU and is windowed inside the network. Losses (004):
``mse``; ``bce`` on the target scaled to [0, 1] by ``output_scale`` with a sigmoid output (PyTorch's
BCE-with-logits, the "Sigmoid + BCE in one class" of 004); ``contextual``: MSE plus
``contextual_weight`` x the contextual loss (bandwidth 0.5) on the feature network's maps at
``feature_layer``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import ModelInfo
from .data import RandomSampler, find_volume
from .errors import MRSynthError
from .masks import normalise_p99
from .training import RUN_DEFAULTS, Trainer, _case_dirs, train
from .volume_io import check_same_grid, paper_spacing, read_volume, to_paper

LOSSES = ("mse", "bce", "contextual")
CT_DEFAULTS: dict[str, Any] = {
    "task": "ct2mr",
    "name": "my-ct-to-mr-model",
    "version": "1",
    "output_contrast": "T1w",
    "data": {"train": [], "val": [], "input": "CT", "target": "TSE_HR", "mask": "head_mask"},
    "model": {"architecture": "DRUNetSlices", "depth": 34, "width": 16, "context": 1},
    "loss": "mse",
    "output_scale": 1.5,
    "contextual_weight": 0.1,
    "feature_network": "mr-feature-encoder",
    "feature_layer": 1,
    "contextual_points": 1024,
    "crop": 128,
    "min_head_fraction": 0.2,
    "patch": [32, 256, 256],
    "stride": [18, 18, 4],
    "batch_size": 8,
    "learning_rate": 1.0e-3,
    "lr_schedule": "cosine",
    "weight_decay": 1.0e-5,
    "iterations": 600,
    "epoch_patches": 400,
    "val_patches": 64,
    **RUN_DEFAULTS,
}


class CTCase:
    """One subject: CT (HU), target (p99 units) and head mask, paper order [SI, AP, LR]."""

    def __init__(self, folder: str | Path, data: dict[str, str]):
        folder = Path(folder)
        names = {"input": data["input"], "target": data["target"]}
        images = {key: read_volume(find_volume(folder, n), f"{folder.name}/{n}") for key, n in names.items()}
        check_same_grid(images)
        mask_image = read_volume(find_volume(folder, data["mask"]), f"{folder.name}/{data['mask']}", check=False)
        self.mask = to_paper(mask_image) > 0
        if not self.mask.any():
            raise MRSynthError(f"case {folder}: {data['mask']} is empty: give a head mask")
        self.name = folder.name
        self.ct = to_paper(images["input"]).astype(np.float32)
        self.target = normalise_p99(to_paper(images["target"]), self.mask)[0].astype(np.float32)
        self.spacing = paper_spacing(images["input"])


class SliceSampler(RandomSampler):
    """Random axial slices (with ``context`` neighbours) cropped in-plane to ``crop``, from every case."""

    def __init__(self, cases: list[CTCase], config: dict[str, Any], rng: np.random.Generator):
        self.cases, self.rng = cases, rng
        self.crop = int(config["crop"])
        self.context = int(config["model"]["context"])
        minimum = float(config["min_head_fraction"])
        self.slices = []
        for index, case in enumerate(cases):
            area = case.mask.mean(axis=(1, 2))
            self.slices += [(index, int(s)) for s in np.flatnonzero(area >= minimum * area.max())]
        if not self.slices:
            raise MRSynthError("no axial slice holds enough head: lower min_head_fraction or check the masks")

    def _crop(self, array: np.ndarray, corner: tuple[int, int], fill: float) -> np.ndarray:
        padded = np.pad(
            array,
            [(0, 0), (0, max(0, self.crop - array.shape[1])), (0, max(0, self.crop - array.shape[2]))],
            constant_values=fill,
        )
        return padded[:, corner[0] : corner[0] + self.crop, corner[1] : corner[1] + self.crop]

    def draw(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, None]:
        """(CT [B, 1, 2k + 1, crop, crop] in HU, target [B, 1, 1, crop, crop], None)."""
        xs, ys = [], []
        k = self.context
        for _ in range(batch_size):
            case_index, s = self.slices[self.rng.integers(len(self.slices))]
            case = self.cases[case_index]
            rows = np.clip(np.arange(s - k, s + k + 1), 0, case.ct.shape[0] - 1)
            head = np.argwhere(case.mask[s])
            centre = head[self.rng.integers(len(head))]
            corner = tuple(
                int(np.clip(c - self.crop // 2, 0, max(0, n - self.crop)))
                for c, n in zip(centre, case.ct.shape[1:], strict=True)
            )
            xs.append(self._crop(case.ct[rows], corner, -1000.0))
            ys.append(self._crop(case.target[s : s + 1], corner, 0.0))
        return np.stack(xs)[:, None], np.stack(ys)[:, None], None


class CTTrainer(Trainer):
    """The foundation's loop with CT/MR slices, DRUNet and 004's losses."""

    def __init__(self, config: dict[str, Any], run_dir: str | Path):
        self._open_run(config, run_dir)
        data = config["data"]
        if config["loss"] not in LOSSES:
            raise MRSynthError(f"loss {config['loss']!r} is unknown: use {', '.join(LOSSES)}")
        self.patch = tuple(int(p) for p in config["patch"])
        self.train_cases = [CTCase(d, data) for d in _case_dirs(data["train"], "train")]
        self.val_cases = [CTCase(d, data) for d in _case_dirs(data["val"], "val")]
        self.voxel_size = [float(v) for v in np.median([c.spacing for c in self.train_cases], axis=0)]
        model = config["model"]
        self.arguments = {
            "depth": int(model["depth"]),
            "width": int(model["width"]),
            "context": int(model["context"]),
            "output": "sigmoid" if config["loss"] == "bce" else "linear",
            "output_scale": float(config["output_scale"]),
        }
        seed = self._start_optimisation(model["architecture"])
        self.sampler = self._sampler(self.train_cases, np.random.default_rng(seed))
        self.val_batches = self._validation_batches(seed + 1)
        self.features = None
        if config["loss"] == "contextual":
            from .feature_losses import load_feature_network

            self.features = load_feature_network(str(config["feature_network"]), self.device)
        self.generator = torch.Generator().manual_seed(seed)

    def _sampler(self, cases: list, rng: np.random.Generator, random_offsets: bool = True) -> SliceSampler:
        return SliceSampler(cases, self.config, rng)

    def loss(self, x: np.ndarray, y: np.ndarray, k: None, flip: bool) -> torch.Tensor:
        """004's loss on the centre slices' output; a left-right flip mirrors both CT and target."""
        xt, yt = self._on_device(x, y[:, :, 0], flip)
        model = self.network
        context = model.context
        planes = model.slice_channels(xt)[context :: 2 * context + 1]
        raw = self.forward(model.net, planes)
        kind = self.config["loss"]
        if kind == "bce":
            return F.binary_cross_entropy_with_logits(raw, (yt / model.output_scale).clamp(0.0, 1.0))
        loss = F.mse_loss(raw, yt)
        if kind == "contextual":
            layer = int(self.config["feature_layer"])
            predicted = self.features(raw, last=layer)[layer]
            with torch.no_grad():
                wanted = self.features(yt, last=layer)[layer]
            cx = contextual_loss_of(predicted, wanted, int(self.config["contextual_points"]), self.generator)
            loss = loss + float(self.config["contextual_weight"]) * cx
        return loss

    def model_info(self) -> ModelInfo:
        data = self.config["data"]
        return ModelInfo(
            name=str(self.config["name"]),
            version=str(self.config["version"]),
            architecture=self.config["model"]["architecture"],
            arguments=self.arguments,
            inputs=[str(data["input"])],
            output=str(self.config["output_contrast"]),
            voxel_size=self.voxel_size,
            patch=list(self.patch),
            stride=[int(s) for s in self.config["stride"]],
            approach="ct-to-mr-slices",
            task="synthesis",
            normalisation={
                "method": "none",
                "description": "the CT input in Hounsfield units, windowed inside the network; the output in units "
                "of the target contrast's 99th percentile inside the head (1.0 = that percentile)",
            },
            training=self.training_record(),
        )


def contextual_loss_of(
    predicted: torch.Tensor, wanted: torch.Tensor, points: int, generator: torch.Generator
) -> torch.Tensor:
    """The contextual loss of 004 on ``points`` random feature positions (the same in both maps)."""
    from .feature_losses import contextual_loss

    return contextual_loss(predicted, wanted, bandwidth=0.5, max_points=points, sampling="random", generator=generator)


# ``training.train`` with this task's defaults and trainer.
train_ct2mr = partial(train, defaults=CT_DEFAULTS, trainer_class=CTTrainer)
