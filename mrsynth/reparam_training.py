"""Re-parameterisation training (paper 001) in the foundation's resumable loop (``mrsynth train --task reparam``).

Each batch is made on the fly: ``draws`` times a random training subject and random settings
(``reparam_data``), the input and the target computed on the subject's axial slices, and
``batch_size / draws`` random crops of them. Default-to-Param always acquires the input at TR 4.5 s,
TE 50 ms and is conditioned on the target's TR/TE; Param-to-Param draws the input's TR/TE too and
is conditioned on both; ``near_input`` draws that fraction of targets close to the input's setting;
``input_region`` draws a fraction of Param-to-Param inputs uniformly in a TR x TE box, so that a corner
the log-uniform draws reach rarely (PD-weighted inputs, short TR and TE) gets more training.
``target_setting`` fixes every Param-to-Param target at one setting (the first stage of
``paramnet.ChainedParamNet``); ``near_input`` then draws that fraction of inputs close to it.
``extracranial_shuffle`` gives that fraction of training draws (never validation draws) a random
permutation of the extra-cranial soft tissues' properties (``reparam_data.shuffled_tissues``).
``input_stage`` (Default-to-Param only) names a Param-to-Default model, or a chained model whose
first stage is taken; ``input_stage_fraction`` of the draws then acquire the input at a random
setting and give the Default-to-Param network that model's rendering of it at TR 4.5 s / TE 50 ms,
the image it gets as the second stage of a chain, instead of an acquisition at that setting;
with ``near_input``, such a draw's target is drawn near the setting the input was acquired at.
The loss is MSE, as in section 3.4, or (``loss: relative_mse``) each draw's
MSE divided by what rescaling its input achieves (``relative_mse``); ``transfer_weight`` adds
that weight times the error a chain's residual transfer makes of the network's errors
(``transfer_error``): the network is run at the target and at the setting the input was acquired at.

``model.architecture: MapParamNet`` (Param-to-Param only, ``tissue_maps``) predicts tissue maps and
renders them: its targets stay in the input's units, and its loss is the relative MSE at the target
setting plus ``consistency_weight`` times the relative MSE of the maps rendered at the input's own
setting against the noise-free input, plus ``map_weight`` times the maps' own error (``map_error``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .acquisition import condition_vector
from .checkpoint import ModelInfo
from .data import RandomSampler
from .errors import MRSynthError
from .models import load_model
from .reparam_chain import first_stage
from .reparam_data import (
    DEFAULT_INPUT,
    SNR,
    TE_RANGE,
    TR_RANGE,
    TR_SCALES,
    Anatomy,
    CropSimulator,
    condition_values,
    parameter_declaration,
    sample_near,
    sample_parameters,
    shuffled_tissues,
)
from .simulate import load_spec
from .tissue_maps import fat_component
from .training import RUN_DEFAULTS, Trainer, train

MAPS_ARCHITECTURE = "MapParamNet"

REPARAM_DEFAULTS: dict[str, Any] = {
    "task": "reparam",
    "name": "my-reparam-model",
    "version": "1",
    "variant": "default",  # default (Default-to-Param) or param (Param-to-Param)
    "data": {"train": [], "val": [], "atlas": "synthseg", "slices": 24},
    # input_skip: the input added to the output with a learnt gain (our addition, paramnet.ParamNet)
    "model": {"architecture": "ParamNet", "width": 8, "levels": 4, "max_width": 64, "input_skip": False},
    "crop": 64,
    "draws": 4,
    "loss": "mse",  # mse (the paper) or relative_mse
    "tr_scale": "linear",  # TR drawn uniformly (the paper) or log-uniformly
    "tr_encoding": "linear",  # the output's TR enters the network linearly or on a log scale (parameter_declaration)
    "near_input": 0.0,  # fraction of draws whose target lies near the input's setting (reparam_data.sample_near)
    # Param-to-Param: that fraction of inputs drawn uniformly in a box (ms),
    # e.g. {fraction: 0.3, TR: [1500, 2500], TE: [20, 30]}
    "input_region": None,
    # fraction of training draws whose extra-cranial soft tissues swap properties (reparam_data.shuffled_tissues)
    "extracranial_shuffle": 0.0,
    # Param-to-Param to one fixed output setting ({TR: ms, TE: ms}), the first stage of a ChainedParamNet
    "target_setting": None,
    # Default-to-Param as a chain's second stage: that fraction of draws takes its input from this
    # Param-to-Default model (or a chained model's first stage) run on an input at a random setting
    "input_stage": None,
    "input_stage_fraction": 0.5,
    # weight of ``transfer_error``: the error at the target less its slope times the error at the input's setting
    "transfer_weight": 0.0,
    "consistency_weight": 1.0,  # MapParamNet: weight of the maps rendered at the input's own setting
    "map_weight": 0.0,  # MapParamNet: weight of the error of the maps themselves (``map_error``)
    "batch_size": 16,
    "learning_rate": 1.0e-3,
    "lr_schedule": "cosine",
    "weight_decay": 0.0,
    "iterations": 1000,
    "epoch_patches": 1600,
    "val_patches": 64,
    **RUN_DEFAULTS,
}


class ReparamSampler(RandomSampler):
    """Random (subject, settings, crops) batches: inputs [B, 1, S, S], targets [B, 1, S, S], conditions [B, P]."""

    def __init__(
        self, anatomies: list[Anatomy], config: dict[str, Any], rng: np.random.Generator, augment: bool = True
    ):
        if not anatomies:
            raise MRSynthError("no subjects to sample: set data.train to SynthSeg label maps")
        self.rng = rng
        self.variant = str(config["variant"])
        self.declared = parameter_declaration(self.variant, str(config.get("tr_encoding", "linear")))
        self.crop, self.draws = int(config["crop"]), int(config["draws"])
        if self.draws < 1 or int(config["batch_size"]) % self.draws:
            raise MRSynthError(f"batch_size {config['batch_size']} must be a multiple of draws {self.draws}")
        if config["tr_scale"] not in TR_SCALES:
            raise MRSynthError(f"unknown tr_scale {config['tr_scale']!r}: use linear (the paper) or log")
        self.settings = partial(sample_parameters, rng, str(config["tr_scale"]))
        self.near_input = float(config["near_input"])
        if not 0.0 <= self.near_input <= 1.0:
            raise MRSynthError(f"near_input is a fraction of the draws, from 0 to 1, not {self.near_input}")
        self.region = input_region(config.get("input_region"), self.variant)
        self.shuffle = float(config.get("extracranial_shuffle", 0.0))
        if not 0.0 <= self.shuffle <= 1.0:
            raise MRSynthError(f"extracranial_shuffle is a fraction of the draws, from 0 to 1, not {self.shuffle}")
        self.shuffle = self.shuffle if augment else 0.0
        self.target_setting = fixed_setting(config.get("target_setting"), self.variant)
        self.maps = config.get("model", {}).get("architecture") == MAPS_ARCHITECTURE
        self.stage, self.stage_fraction = input_stage(config, self.variant)
        self.map_weight = float(config.get("map_weight", 0.0))
        self.transfer = float(config.get("transfer_weight", 0.0)) > 0
        if self.transfer and self.maps:
            raise MRSynthError("transfer_weight is an option of ParamNet: MapParamNet has consistency_weight")
        self.spec = load_spec()
        self.simulators = [CropSimulator(anatomy, self.spec) for anatomy in anatomies]

    def _near(self) -> bool:
        """Whether this draw's pair is near each other; no random draw when the option is off, so old runs replay."""
        return bool(self.near_input) and self.rng.random() < self.near_input

    def _input_setting(self) -> dict[str, float]:
        """A Param-to-Param input's setting: in ``input_region`` for that fraction of draws, else the usual draw;
        no extra random draw when the option is off, so old runs replay."""
        if self.region and self.rng.random() < self.region["fraction"]:
            return {name: float(self.rng.uniform(*self.region[name])) for name in ("TR", "TE")}
        return self.settings()

    def _order(self) -> np.ndarray | None:
        """This draw's tissue order, or None; no random draw when the option is off, so old runs replay."""
        if self.shuffle and self.rng.random() < self.shuffle:
            return shuffled_tissues(self.rng, self.spec)
        return None

    def draw(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xs, ys, cs = [], [], []
        for _ in range(self.draws):
            simulator = self.simulators[int(self.rng.integers(len(self.simulators)))]
            if self.target_setting:  # one output setting; a near draw puts the input near it
                target, near = dict(self.target_setting), self._near()
                source = sample_near(self.rng, target) if near else self._input_setting()
            else:
                source = dict(DEFAULT_INPUT) if self.variant == "default" else self._input_setting()
                near = self._near()
                target = sample_near(self.rng, source) if near else self.settings()
            staged = self.stage is not None and self.rng.random() < self.stage_fraction
            if staged:  # the chain's middle image: the first stage's rendering of an input at another setting
                source = self.settings()
                if near:  # near the setting the input was acquired at, where a chain competes with that input
                    target = sample_near(self.rng, source)
            crops = simulator.random_crops(self.crop, batch_size // self.draws, self.rng)
            order = self._order()
            if self.maps:  # the target and the input's own setting, both in the input's units
                x, y = simulator.renders(
                    source, [target, source], crops, self.crop, self.rng, "input", self.map_weight > 0, order
                )
            else:  # with transfer_weight, the noise-free input (own units) follows the target
                x, y = simulator.renders(
                    source, [target, source] if self.transfer else [target], crops, self.crop, self.rng, order=order
                )
            acquired = source
            if staged:
                x, source = self._first_stage(x, source), dict(DEFAULT_INPUT)
            xs.append(x[:, None])
            ys.append(y)
            condition = condition_vector(self.declared, condition_values(self.declared, source, target))
            if self.transfer:  # then the conditioning that renders the input's own setting, and the slope between
                own = condition_vector(self.declared, condition_values(self.declared, source, acquired))
                condition = np.concatenate([condition, own, [simulator.head_slope(target, acquired, order)]])
            cs += [condition] * len(crops)
        return np.concatenate(xs), np.concatenate(ys), np.asarray(cs, dtype=np.float32)

    def _first_stage(self, x: np.ndarray, source: dict[str, float]) -> np.ndarray:
        """``input_stage``'s rendering at TR 4.5 s / TE 50 ms of input crops [N, S, S] acquired at ``source``."""
        info = self.stage.info
        values = {f"input_{name}": value for name, value in source.items()} | DEFAULT_INPUT
        conditions = torch.tensor([condition_vector(info.parameters, values)] * len(x), dtype=torch.float32)
        with torch.no_grad():
            return self.stage.network(torch.from_numpy(x[:, None].astype(np.float32)), conditions)[:, 0].numpy()


class ReparamTrainer(Trainer):
    """The foundation's loop (logs, checkpoints, resume) with re-parameterisation data, Param-Net and MSE."""

    def __init__(self, config: dict[str, Any], run_dir: str | Path):
        self._open_run(config, run_dir)
        data = config["data"]
        slices = int(data["slices"])
        self.train_cases = [Anatomy.from_file(p, data["atlas"], slices) for p in _files(data["train"], "train")]
        self.val_cases = [Anatomy.from_file(p, data["atlas"], slices) for p in _files(data["val"], "val")]
        declared = parameter_declaration(str(config["variant"]), str(config["tr_encoding"]))
        if config["loss"] not in ("mse", "relative_mse"):
            raise MRSynthError(f"unknown re-parameterisation loss {config['loss']!r}: use mse or relative_mse")
        model = config["model"]
        self.arguments = {
            "in_channels": 1,
            "out_channels": 1,
            "conditions": len(declared),
            "width": int(model["width"]),
            "levels": int(model["levels"]),
            "max_width": int(model["max_width"]),
        }
        if model.get("input_skip"):  # stored only when set, so that older checkpoints' arguments stay as they were
            self.arguments["input_skip"] = True
        self.maps = model["architecture"] == MAPS_ARCHITECTURE
        if self.maps and model.get("input_skip"):
            raise MRSynthError("input_skip is an option of ParamNet: MapParamNet renders its output from tissue maps")
        if self.maps:
            if config["variant"] != "param" or config["loss"] != "relative_mse":
                raise MRSynthError(
                    "MapParamNet renders tissue maps for Param-to-Param: set variant: param and loss: relative_mse "
                    "(its targets keep the input's units, which only the relative MSE makes comparable)"
                )
            del self.arguments["out_channels"]
            ranges = [[spec["min"], spec["max"], spec["scale"]] for spec in declared.values()]
            self.arguments |= {"ranges": ranges} | fat_component(load_spec())
        seed = self._start_optimisation(model["architecture"])
        self.sampler = self._sampler(self.train_cases, np.random.default_rng(seed))
        self.val_batches = self._validation_batches(seed + 1)

    def _sampler(self, cases: list, rng: np.random.Generator, random_offsets: bool = True) -> ReparamSampler:
        return ReparamSampler(cases, self.config, rng)

    def _validation_batches(self, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Drawn from the validation subjects' own tissues: the shuffle is a training augmentation only."""
        if not self.val_cases:
            return []
        return self._batches_from(ReparamSampler(self.val_cases, self.config, np.random.default_rng(seed), False))

    def loss(self, x: np.ndarray, y: np.ndarray, k: np.ndarray, flip: bool) -> torch.Tensor:
        """MSE (or relative MSE) between the output and the noise-free target; ``k`` holds the conditioning values."""
        xt, yt = self._on_device(x, y, flip)
        conditions = torch.from_numpy(k).to(self.device)
        if self.maps:
            maps = self.forward(self.network.maps, xt, conditions[:, :2])
            groups = draw_groups(k)
            out = self.network.render(maps, *self.network.settings(conditions, 2))
            own = self.network.render(maps, *self.network.settings(conditions, 0))
            weight = float(self.config["consistency_weight"])
            loss = relative_mse(out, yt[:, :1], xt, groups) + weight * relative_mse(own, yt[:, 1:2], xt, groups)
            if yt.shape[1] > 2:
                loss = loss + float(self.config["map_weight"]) * map_error(maps, yt[:, 2:])
            return loss
        weight = float(self.config.get("transfer_weight", 0.0))
        width = (conditions.shape[1] - 1) // 2 if weight > 0 else conditions.shape[1]
        out = self.forward(self.network, xt, conditions[:, :width])
        if self.config["loss"] == "relative_mse":
            loss = relative_mse(out, yt[:, :1], xt, draw_groups(k))
        else:
            loss = torch.nn.functional.mse_loss(out, yt[:, :1])
        if weight > 0:  # conditions: the target's, the input's own setting's, then the slope between the two
            own = self.forward(self.network, xt, conditions[:, width : 2 * width])
            loss = loss + weight * transfer_error(out, own, yt[:, :1], yt[:, 1:2], conditions[:, -1])
        return loss

    def model_info(self) -> ModelInfo:
        variant = str(self.config["variant"])
        source = (
            f"spin-echo image at TR {DEFAULT_INPUT['TR']:g} ms, TE {DEFAULT_INPUT['TE']:g} ms"
            if variant == "default"
            else "spin-echo image at the TR/TE given as input_TR, input_TE"
        )
        return ModelInfo(
            name=str(self.config["name"]),
            version=str(self.config["version"]),
            architecture=self.config["model"]["architecture"],
            arguments=self.arguments,
            inputs=[source],
            output="spin-echo image at the TR/TE given as TR, TE",
            voxel_size=[1.0, 1.0, 1.0],
            patch=[16, 128, 128],
            stride=[16, 64, 64],
            approach="re-parameterisation",
            task="re-parameterisation",
            parameters=parameter_declaration(variant, str(self.config["tr_encoding"])),
            normalisation={
                "method": "p99",
                "description": "the input divided by its 99th percentile inside the body mask; the output is the "
                "image at the requested TR/TE in units of its own 99th percentile inside the body (1.0 = that "
                "percentile), as the training target was normalised",
            }
            | ({"output": "p99"} if self.maps else {}),
            training=self.training_record() | {"variant": variant, "snr": SNR},
        )


def input_stage(config: dict[str, Any], variant: str) -> tuple[Any, float]:
    """``input_stage`` loaded (its first stage if chained, in eval mode) and its fraction, or (None, 0)."""
    name = config.get("input_stage")
    if not name:
        return None, 0.0
    if variant != "default":
        raise MRSynthError("input_stage feeds a Default-to-Param model the first stage's output: set variant: default")
    fraction = float(config.get("input_stage_fraction", 0.5))
    if not 0.0 < fraction <= 1.0:
        raise MRSynthError(f"input_stage_fraction is a fraction of the draws, in (0, 1], not {fraction}")
    stage = first_stage(load_model(str(name)))
    setting = stage.info.training.get("config", {}).get("target_setting") or {}
    if stage.info.architecture != "ParamNet" or {k: float(v) for k, v in setting.items()} != DEFAULT_INPUT:
        raise MRSynthError(
            f"input_stage {name} is not a Param-to-Param ParamNet trained to TR {DEFAULT_INPUT['TR']:g} ms, "
            f"TE {DEFAULT_INPUT['TE']:g} ms: give reparam-param-sim or a model trained with that target_setting"
        )
    stage.network.eval()
    return stage, fraction


def input_region(region: dict | None, variant: str) -> dict | None:
    """``input_region`` checked: Param-to-Param only, a fraction in (0, 1], TR and TE ranges (ms) inside training's."""
    if not region:
        return None
    if variant != "param":
        raise MRSynthError("input_region draws Param-to-Param inputs: Default-to-Param's input setting is fixed")
    try:
        checked = {"fraction": float(region["fraction"])}
        for name, (low, high) in (("TR", TR_RANGE), ("TE", TE_RANGE)):
            a, b = (float(v) for v in region[name])
            if not low <= a < b <= high:
                raise ValueError(f"{name} [{a:g}, {b:g}] is not an increasing range inside [{low:g}, {high:g}] ms")
            checked[name] = (a, b)
    except (KeyError, TypeError, ValueError) as error:
        raise MRSynthError(
            f"input_region {region!r} is not {{fraction: F, TR: [low, high], TE: [low, high]}} with ranges inside the "
            f"training ranges ({error})"
        ) from None
    if not 0.0 < checked["fraction"] <= 1.0:
        raise MRSynthError(f"input_region's fraction must be in (0, 1], not {checked['fraction']}")
    return checked


def fixed_setting(setting: dict | None, variant: str) -> dict[str, float] | None:
    """``target_setting`` checked: Param-to-Param only, TR and TE (ms) inside the training ranges."""
    if not setting:
        return None
    if variant != "param":
        raise MRSynthError("target_setting fixes the output of a Param-to-Param model: set variant: param")
    if set(setting) != {"TR", "TE"}:
        raise MRSynthError(f"target_setting takes TR and TE in ms, e.g. {{TR: 4500, TE: 50}}, not {setting}")
    values = {name: float(value) for name, value in setting.items()}
    for name, (low, high) in (("TR", TR_RANGE), ("TE", TE_RANGE)):
        if not low <= values[name] <= high:
            raise MRSynthError(
                f"target_setting {name} {values[name]:g} ms is outside the training range {low:g}-{high:g} ms"
            )
    return values


def map_error(predicted: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Squared error of the tissue maps [B, 4, H, W] (PD, fat fraction, T1, T2) where the tissue has signal
    (PD > 0): the fat fraction as it is, PD, T1 and T2 on a log scale (relative errors; PD in the input's
    units reaches 25 for an input at long TE, whose 99th percentile is small).

    Why: rendered at one target setting per draw, the four maps are not determined (a fat fraction
    can stand in for a short T1), and from an input where CSF is nearly as bright as tissue the
    renders alone did not teach the network to find it. The simulator knows every voxel's tissue, so
    the maps can be taught directly (in the runs of docs/other-systems.md that did not find CSF there
    either).
    """
    tissue = (true[:, 0] > 0).to(predicted.dtype)
    count = tissue.sum().clamp_min(1.0)
    ff = ((predicted[:, 1] - true[:, 1]) ** 2 * tissue).sum() / count
    inside = tissue[:, None].expand(-1, 3, -1, -1) > 0  # where() with both branches finite: no NaN gradients
    one = torch.ones_like(predicted[:, :3])
    guess = torch.where(inside, torch.cat([predicted[:, :1], predicted[:, 2:4]], 1).clamp_min(1e-6), one)
    ratios = guess / torch.where(inside, torch.cat([true[:, :1], true[:, 2:4]], 1), one)
    return ff + ((torch.log(ratios) ** 2).sum(1) * tissue).sum() / count


def transfer_error(
    output: torch.Tensor, own: torch.Tensor, target: torch.Tensor, truth_own: torch.Tensor, slope: torch.Tensor
) -> torch.Tensor:
    """Mean square of ``(output - target) - slope * (own - truth_own)``, one slope per crop.

    Why: a chained Param-to-Param model adds to its rendering at the target the input less its
    rendering at the input's own setting, times the slope from that rendering to the target's
    (``reparam_chain.residual_transfer``). Of the noise-free part, what reaches the output is the
    error at the target less the slope times the error at the input's setting. Next to the input's
    contrast the slope is near 1 and only errors that the two renderings share cancel: the MSE at
    the target alone does not ask for that. ``slope`` [N] is the least-squares slope between the two
    noise-free images over the whole head (``CropSimulator.head_slope``), a stand-in for the one the
    chain fits between its renderings over the body (a crop's own fit is unstable: a dark crop has
    almost no variance to fit on). Our addition (docs/other-systems.md, "A loss on the residual
    transfer's error").
    """
    if not output.shape == own.shape == target.shape == truth_own.shape:
        raise MRSynthError(f"transfer_error needs equal shapes, got {output.shape}, {own.shape}, {target.shape}")
    gain = slope.to(output.device, output.dtype).view(-1, *[1] * (output.ndim - 1))
    return (((output - target) - gain * (own - truth_own)) ** 2).mean()


def draw_groups(conditions: np.ndarray) -> torch.Tensor:
    """The draw of each crop: crops with the same conditioning values share a (subject, settings) draw."""
    _, groups = np.unique(conditions, axis=0, return_inverse=True)
    return torch.from_numpy(groups.reshape(-1))


def relative_mse(
    output: torch.Tensor, target: torch.Tensor, source: torch.Tensor, groups: torch.Tensor, floor: float = 1e-4
) -> torch.Tensor:
    """Each group's MSE divided by the MSE of the best global map a x + b of its input onto its target.

    Why: the MSE of one draw ranges over two orders of magnitude with the settings. A long-TE input
    is nearly all noise and cannot be mapped to a short-TE target, while a target next to the input's
    own setting is nearly a rescaled copy of it. Under plain MSE the draws with the largest errors
    rule the gradient, and Param-to-Param stayed below the rescaled input next to its own setting,
    where rescaling is already good. Divided by what rescaling achieves, every draw counts by how much
    better than rescaling the network does (a value below 1 beats it), which is what the model is
    judged on, setting by setting. ``floor`` keeps a group whose input is already an exact linear copy
    from dividing by zero.
    """
    if not output.shape == target.shape == source.shape:
        raise MRSynthError(f"relative_mse needs equal shapes, got {output.shape}, {target.shape}, {source.shape}")
    groups = groups.to(output.device)
    count = int(groups.max()) + 1

    def group_mean(values: torch.Tensor) -> torch.Tensor:  # [N, V] -> [groups]: mean over each group's voxels
        sums = torch.zeros(count, dtype=values.dtype, device=values.device).index_add(0, groups, values.sum(1))
        return sums / torch.bincount(groups, minlength=count).to(values.dtype) / values.shape[1]

    with torch.no_grad():  # the least-squares residual of y on x per group: var(y) - cov(x, y)^2 / var(x)
        x, y = source.flatten(1).double(), target.flatten(1).double()
        mx, my = group_mean(x), group_mean(y)
        var_x, var_y, cov = group_mean(x * x) - mx**2, group_mean(y * y) - my**2, group_mean(x * y) - mx * my
        baseline = var_y - cov**2 / var_x.clamp_min(torch.finfo(torch.float64).tiny)
    error = group_mean(((output - target) ** 2).flatten(1))
    return (error / baseline.clamp_min(floor).to(error.dtype)).mean()


def _files(entries: list[str], what: str) -> list[str]:
    import glob

    files = [m for entry in entries for m in (sorted(glob.glob(str(entry))) or [entry])]
    for f in files:
        if not Path(f).is_file():
            raise MRSynthError(f"{what} label map {f} does not exist: check data.{what} in the config")
    if what == "train" and not files:
        raise MRSynthError("no training subjects: set data.train to label maps (e.g. ../shared/data/synthseg_labels)")
    return files


# ``training.train`` with this task's defaults and trainer.
train_reparam = partial(train, defaults=REPARAM_DEFAULTS, trainer_class=ReparamTrainer)
