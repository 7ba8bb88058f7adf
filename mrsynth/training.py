"""High-to-low training (paper 000, section II.E, Fig. 2 and 3), resumable.

The network runs at the GE's resolution on 56x56x32 patches; its output (sTSE_HR) is reduced along
LR by the 1x1x4 kernel that goes with the patch's random offset (``highlow``) and compared with the
thick TSE by L1. Patches are drawn one per patient in turn, flipped along LR every other iteration;
Adam with weight decay 1e-5. A run directory keeps the config, a CSV and a TensorBoard log, and
checkpoints written atomically every N iterations; ``train(resume=RUN_DIR)`` continues a killed run
from its last checkpoint with the same data order (RNG states are saved too).
"""

from __future__ import annotations

import copy
import csv
import glob
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from threadpoolctl import threadpool_limits

from .checkpoint import P99_NORMALISATION, ModelInfo, read_checkpoint, save_checkpoint
from .data import Case, PatchSampler
from .early_stopping import EarlyStopping
from .errors import MRSynthError
from .files import atomic_path
from .highlow import downsample_lr, estimate_pair_start, inference_kernel
from .inference import resolve_device
from .input_levels import p99_levels
from .losses import mind_loss
from .lowlow import ThickPatchSampler, thick_case
from .networks import Ensemble, build_network, network_arguments

# Settings of the run itself, the same in every task's defaults.
RUN_DEFAULTS: dict[str, Any] = {
    "checkpoint_every": 50,
    "flip": True,  # also train on left-right mirrored batches
    # stop when the validation loss smoothed by a Gaussian of `sigma` epochs has not fallen by
    # `min_delta` (relative) below its best for `patience` epochs (paper 000, II.D.1); null: never
    "early_stopping": None,
    "seed": 0,
    "init_weights": None,
    "device": "auto",
    "threads": 0,
    # processes that draw training batches beside the optimisation (0: drawn in the loop, so that a resumed
    # run replays the interrupted one's data exactly; with workers a resumed run draws afresh)
    "data_workers": 0,
    # end the run after this many minutes of training, the cosine schedule spread over them (null: iterations)
    "time_budget_minutes": None,
    # float32, or bfloat16: the network runs under torch.autocast in bfloat16 (weights, optimiser and losses stay
    # float32); 3D training steps 1.9x faster on a CPU with AVX512-BF16 (scripts/bench_training_precision.py)
    "precision": "float32",
}

DEFAULTS: dict[str, Any] = {
    "name": "my-model",
    "version": "1",
    "output_contrast": "TSE_T1w",
    "data": {
        "train": [],
        "val": [],
        "inputs": ["GE_aOP", "GE_aIP"],
        "target": "TSE_thick",
        "mask": "head_mask",
    },
    # blocks_per_stage and pointwise_width (0: none; our per-voxel branch, see networks.HighResNet):
    # HighResNet (PointwiseNet: the branch alone); levels and batch_norm: UNet (batch_norm true = the
    # paper's U-Net+BN)
    "model": {
        "architecture": "HighResNet",
        "width": 16,
        "blocks_per_stage": 3,
        "pointwise_width": 0,
        "levels": 4,
        "batch_norm": False,
        "padding": "reflect",
    },
    "approach": "high-to-low",  # or low-to-low (section II.D): GE resampled to the thick grid
    "low_to_low_resampling": "weighted",  # or bspline (lowlow.RESAMPLINGS)
    "pair_start": "auto",
    "patch": [56, 56, 32],
    "stride": [18, 18, 4],
    "batch_size": 16,
    "learning_rate": 1.0e-3,
    "lr_schedule": "constant",
    "weight_decay": 1.0e-5,
    "iterations": 1000,
    "epoch_patches": 800,
    "val_patches": 160,
    "random_offsets": True,
    # fig3: the paper's offset/kernel combinations; aligned: random offsets, the average kernel on the
    # image's own thick slices (no low-pass bias along LR; see mrsynth.highlow)
    "kernel_scheme": "fig3",
    # L = L1 + mind_weight * MIND(sTSE_HR, GE aIP) on Sobel features (eq. 2; the paper used 0 and 0.1);
    # the aIP GE is the last input
    "mind_weight": 0.0,
    **RUN_DEFAULTS,
}

APPROACHES = ("high-to-low", "low-to-low")
RESUME_OVERRIDABLE = {
    "iterations",
    "checkpoint_every",
    "device",
    "threads",
    "data_workers",
    "time_budget_minutes",
    "precision",
}
PRECISIONS = ("float32", "bfloat16")

ProgressCallback = Callable[[int, int, dict[str, float]], None]


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None, defaults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Defaults (``DEFAULTS`` unless given), updated by a YAML/JSON file, updated by ``overrides``."""
    config = copy.deepcopy(DEFAULTS if defaults is None else defaults)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise MRSynthError(f"config file {path} does not exist: give a YAML or JSON file")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise MRSynthError(f"config file {path} is not valid YAML/JSON: {err}") from None
        _merge(config, loaded, str(path))
    _merge(config, overrides or {}, "overrides")
    return config


def _merge(base: dict[str, Any], update: dict[str, Any], source: str) -> None:
    for key, value in update.items():
        if key not in base:
            raise MRSynthError(f"unknown setting {key!r} in {source}: known settings are {', '.join(sorted(base))}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            _merge(base[key], value, source)
        else:
            base[key] = value


def _case_dirs(entries: list[str], what: str) -> list[Path]:
    dirs: list[Path] = []
    for entry in entries:
        matches = sorted(glob.glob(str(entry))) or [entry]
        dirs.extend(Path(m) for m in matches)
    for d in dirs:
        if not d.is_dir():
            raise MRSynthError(f"{what} case folder {d} does not exist: check data.{what} in the config")
    if what == "train" and not dirs:
        raise MRSynthError("no training cases: set data.train in the config to case folders (see mrsynth simulate)")
    return dirs


class Trainer:
    """One training run in a run directory."""

    def __init__(self, config: dict[str, Any], run_dir: str | Path):
        self._open_run(config, run_dir)
        self.patch = tuple(int(p) for p in config["patch"])
        data = config["data"]
        names = (data["inputs"], data["target"], data["mask"])
        self.train_cases = [Case.load(d, *names, self.patch) for d in _case_dirs(data["train"], "train")]
        self.val_cases = [Case.load(d, *names, self.patch) for d in _case_dirs(data["val"], "val")]
        self.pair_start = self._pair_start()
        self.approach = str(config["approach"])
        if self.approach not in APPROACHES:
            raise MRSynthError(f"approach must be {' or '.join(APPROACHES)}, not {self.approach!r}")
        if self.approach == "low-to-low":
            method = str(config["low_to_low_resampling"])
            self.train_cases = [thick_case(c, method, self.pair_start, self.patch) for c in self.train_cases]
            self.val_cases = [thick_case(c, method, self.pair_start, self.patch) for c in self.val_cases]
        self.voxel_size = [float(v) for v in np.median([c.spacing for c in self.train_cases], axis=0)]
        model = config["model"]
        self.arguments = network_arguments(model, len(data["inputs"]), self.voxel_size)
        seed = self._start_optimisation(model["architecture"])
        self.sampler = self._sampler(self.train_cases, np.random.default_rng(seed), bool(config["random_offsets"]))
        self.val_batches = self._validation_batches(seed + 1)
        self.mind_weight = float(config["mind_weight"])

    def _open_run(self, config: dict[str, Any], run_dir: str | Path) -> None:
        """Config, run folder, device and thread count: the start of every task's trainer."""
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = resolve_device(str(config["device"]))
        if int(config["data_workers"]) < 0:
            raise MRSynthError(f"data_workers must be 0 (none) or more, not {config['data_workers']}")
        if config["time_budget_minutes"] is not None and float(config["time_budget_minutes"]) <= 0:
            raise MRSynthError(
                f"time_budget_minutes must be positive (or null for none), not {config['time_budget_minutes']}"
            )
        if config["threads"]:
            torch.set_num_threads(int(config["threads"]))
        if config["precision"] not in PRECISIONS:
            raise MRSynthError(f"precision must be {' or '.join(PRECISIONS)}, not {config['precision']!r}")
        self.bf16 = config["precision"] == "bfloat16"

    def forward(self, call: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor:
        """``call(*args)``, the network or one of its methods, in the run's precision; the result in float32.

        Only the network runs in bfloat16: the losses (MIND's Sobel filters, the kernels that make thick
        slices, the feature networks) keep float32, so the reduced precision touches the activations alone.
        """
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return call(*args).float()

    def _start_optimisation(self, architecture: str) -> int:
        """Network (seeded, optionally from other weights), optimizer, counters and early stopping,
        shared by every task's trainer; returns the seed for the samplers."""
        config = self.config
        seed = int(config["seed"])
        torch.manual_seed(seed)
        self.network = build_network(architecture, self.arguments).to(self.device)
        if config["init_weights"]:
            self._init_weights(Path(config["init_weights"]))
        # 3D convolutions train 1.3-1.5x faster channels-last on 2 CPU cores (scripts/bench_training_layout.py)
        dims = {p.dim() for p in self.network.parameters()}
        self.channels_last = 5 in dims and 4 not in dims
        if self.channels_last:
            self.network.to(memory_format=torch.channels_last_3d)
        if config["lr_schedule"] not in ("constant", "cosine"):
            raise MRSynthError(f"lr_schedule must be constant or cosine, not {config['lr_schedule']!r}")
        self.optimizer = torch.optim.Adam(
            self.network.parameters(), lr=float(config["learning_rate"]), weight_decay=float(config["weight_decay"])
        )
        self.iteration = 0
        self.seconds_before = 0.0  # training time of the run's earlier sessions (a resumed run)
        self.segment_start: float | None = None
        self.best_val = float("inf")
        self.stopper = self._early_stopping(config["early_stopping"])
        self.stopped_early = False
        return seed

    def _sampler(
        self, cases: list[Case], rng: np.random.Generator, random_offsets: bool = True
    ) -> PatchSampler | ThickPatchSampler:
        """The sampler of training or validation batches over ``cases``; each task's trainer draws its own kind."""
        if self.approach == "low-to-low":
            return ThickPatchSampler(cases, self.patch, rng)
        scheme = str(self.config["kernel_scheme"])
        return PatchSampler(cases, self.patch, self.pair_start, rng, random_offsets, kernel_scheme=scheme)

    def _early_stopping(self, rule: dict[str, float] | None) -> EarlyStopping | None:
        if not rule:
            return None
        if not self.val_cases:
            raise MRSynthError("early_stopping watches the validation loss: give validation cases in data.val")
        known = {"patience", "min_delta", "sigma"}
        if not isinstance(rule, dict) or set(rule) - known:
            raise MRSynthError(f"early_stopping takes {', '.join(sorted(known))} (or null), not {rule!r}")
        return EarlyStopping(**rule)

    def _init_weights(self, path: Path) -> None:
        """Start from another model's weights (fine-tuning a bundled model on a site's own data, say)."""
        payload = read_checkpoint(path)
        state = payload["state_dict"]
        if payload["info"].get("architecture") == "Ensemble" and not isinstance(self.network, Ensemble):
            raise MRSynthError(
                f"init_weights {path} is the mean of several models (an ensemble): write each member with "
                f"'mrsynth ensemble {path} --member K --output MEMBER.pt', fine-tune each, and combine them again"
            )
        try:
            if getattr(self.network, "pointwise", None) is not None and set(state) < set(self.network.state_dict()):
                self._init_part(state)
            elif getattr(self.network, "skip", None) is not None and _skip_missing(self.network, state):
                self.network.load_state_dict(state, strict=False)  # the gain stays at its zero start
            else:
                self.network.load_state_dict(state)
        except RuntimeError as err:
            raise MRSynthError(
                f"init_weights {path} does not fit this run's network ({str(err).splitlines()[0]}): "
                "use the same architecture, width and inputs"
            ) from None

    def _init_part(self, state: dict) -> None:
        """A HighResNet with a per-voxel branch from a model that holds one of its two parts (a plain
        HighResNet, or a PointwiseNet of the branch's width): the missing part starts at zero output,
        so that training begins from exactly the source model."""
        own = set(self.network.state_dict())
        branch = {key for key in own if key.startswith("pointwise.")}
        missing = own - set(state)
        if missing == branch:
            silent = self.network.pointwise[-1]
        elif missing == own - branch:
            silent = self.network.head
        else:
            self.network.load_state_dict(state)  # raises, naming what does not fit
        self.network.load_state_dict(state, strict=False)  # shapes are still checked
        torch.nn.init.zeros_(silent.weight)
        torch.nn.init.zeros_(silent.bias)

    def learning_rate(self) -> float:
        """The rate for the next iteration; a function of the iteration (and, with a time budget, of the training
        time, which checkpoints keep), so resuming needs no other state."""
        base = float(self.config["learning_rate"])
        if self.config["lr_schedule"] == "constant":
            return base
        progress = min(1.0, self.iteration / max(1, int(self.config["iterations"])))
        if self.config.get("time_budget_minutes"):  # whichever runs out first: iterations or minutes
            progress = max(progress, min(1.0, self.trained_seconds() / self.budget_seconds()))
        return base * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))

    def _pair_start(self) -> int:
        value = self.config["pair_start"]
        if value != "auto":
            if int(value) not in (0, 1, 2):
                raise MRSynthError(f"pair_start must be auto, 0, 1 or 2, not {value}")
            return int(value)
        votes = [estimate_pair_start(c.inputs[-1], c.target, c.mask) for c in self.train_cases]
        return int(np.bincount(votes).argmax())

    def _validation_batches(self, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if not self.val_cases:
            return []
        return self._batches_from(self._sampler(self.val_cases, np.random.default_rng(seed)))

    def _batches_from(self, sampler: Any) -> list:
        """The fixed validation set: ``val_patches`` patches drawn once from ``sampler``, in batches."""
        size = int(self.config["batch_size"])
        return [sampler.draw(size) for _ in range(max(1, int(self.config["val_patches"]) // size))]

    def _on_device(self, x: np.ndarray, y: np.ndarray, flip: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch and its targets on the device, both mirrored left-right when ``flip`` (a mirrored head is as
        plausible as the original)."""
        xt, yt = self._tensor(x), self._tensor(y)
        return (xt.flip(-1), yt.flip(-1)) if flip else (xt, yt)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        """An array on the device, in the network's memory layout."""
        tensor = torch.from_numpy(array).to(self.device)
        return tensor.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else tensor

    @property
    def iterations_per_epoch(self) -> int:
        return max(1, int(self.config["epoch_patches"]) // int(self.config["batch_size"]))

    def loss(self, x: np.ndarray, y: np.ndarray, k: np.ndarray | None, flip: bool) -> torch.Tensor:
        """L1 between the thick target and the network output reduced with each patch's kernel.

        Low-to-low patches have no kernel (``k`` None): the output is on the target's grid already.
        """
        xt = self._tensor(x)
        if flip:  # mirror the anatomy the network sees; un-mirror its output so offsets/kernels stay valid
            out = self.forward(self.network, xt.flip(-1)).flip(-1)
        else:
            out = self.forward(self.network, xt)
        low = out if k is None else downsample_lr(out, torch.from_numpy(k).to(self.device))
        loss = torch.nn.functional.l1_loss(low, torch.from_numpy(y).to(self.device))
        if self.mind_weight:
            loss = loss + self.mind_weight * mind_loss(out, xt[:, -1:], self.voxel_size)
        return loss

    def validate(self) -> float:
        if not self.val_batches:
            return float("nan")
        self.network.eval()
        with torch.no_grad():
            losses = [float(self.loss(x, y, k, flip=False)) for x, y, k in self.val_batches]
        self.network.train()
        return float(np.mean(losses))

    def training_record(self) -> dict:
        """What a checkpoint says of its training: the config, the cases, iterations, best validation loss."""
        return {
            "config": json.loads(json.dumps(self.config)),
            "train_cases": [c.name for c in self.train_cases],
            "val_cases": [c.name for c in self.val_cases],
            "iterations": self.iteration,
            "best_val_loss": self.best_val,
        }

    def model_info(self) -> ModelInfo:
        data = self.config["data"]
        return ModelInfo(
            name=str(self.config["name"]),
            version=str(self.config["version"]),
            architecture=self.config["model"]["architecture"],
            arguments=self.arguments,
            inputs=list(data["inputs"]),
            output=str(self.config["output_contrast"]),
            voxel_size=self.voxel_size,
            patch=list(self.patch),
            stride=[int(s) for s in self.config["stride"]],
            approach=self.approach,
            lr_kernel=list(inference_kernel(self.pair_start)) if self.approach == "high-to-low" else None,
            normalisation=P99_NORMALISATION | {"input_levels": self.input_levels()},
            training=self.training_record() | {"pair_start": self.pair_start, "stopped_early": self.stopped_early},
        )

    def input_levels(self) -> list[float]:
        """The training inputs' levels as ``synthesize`` will see a scan's (``input_levels``), computed once."""
        if getattr(self, "_input_levels", None) is None:
            levels = np.mean([p99_levels(list(c.inputs)) for c in self.train_cases], axis=0)
            self._input_levels = [float(v) for v in levels]
        return self._input_levels

    def save(self, name: str) -> Path:
        extra = {
            "optimizer": self.optimizer.state_dict(),
            "iteration": self.iteration,
            "best_val": self.best_val,
            "seconds": self.trained_seconds(),
            "sampler": self.sampler.state(),
            "torch_rng": torch.get_rng_state(),
            "val_history": self.stopper.history if self.stopper else [],
            "stopped_early": self.stopped_early,
        }
        return save_checkpoint(self.run_dir / "checkpoints" / name, self.network, self.model_info(), extra)

    def restore(self, path: Path) -> None:
        payload = read_checkpoint(path)
        extra = payload.get("extra")
        if not extra:
            raise MRSynthError(f"{path} holds no training state: it is an exported model, not a run checkpoint")
        self.network.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(extra["optimizer"])
        self.iteration = int(extra["iteration"])
        self.best_val = float(extra["best_val"])
        self.seconds_before = float(extra.get("seconds", 0.0))
        self.sampler.restore(extra["sampler"])
        torch.set_rng_state(extra["torch_rng"])
        if self.stopper is not None:
            self.stopper.history = [float(v) for v in extra.get("val_history", [])]
        self.stopped_early = bool(extra.get("stopped_early", False))

    def _diverged(self, loss: float) -> MRSynthError:
        """The error for a non-finite loss, raised before the step, and where to go on from."""
        last = self.run_dir / "checkpoints" / "last.pt"
        saved = read_checkpoint(last) if last.is_file() else None
        if saved is not None and all(
            torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point()
        ):
            where = (
                f"its last checkpoint ({last}, iteration {saved['extra']['iteration']}) holds finite weights: start "
                "a new run from it with --set init_weights=that file and a lower learning_rate"
            )
        else:
            where = "no checkpoint with finite weights was written: start again with a lower learning_rate"
        return MRSynthError(
            f"training diverged: the loss became {loss} at iteration {self.iteration + 1} (learning rate "
            f"{self.learning_rate():.3g}); {where}, and check the training data for NaN or infinite values"
        )

    def trained_seconds(self) -> float:
        """Training time so far, earlier sessions of a resumed run included."""
        running = time.time() - self.segment_start if self.segment_start is not None else 0.0
        return self.seconds_before + running

    def budget_seconds(self) -> float:
        return 60.0 * float(self.config["time_budget_minutes"])

    def _expected_total(self, total: int) -> int:
        """The iterations the run will reach, for progress bars: with a time budget, projected from the pace
        so far (the configured iterations are then only a cap, often far beyond reach)."""
        if not self.config.get("time_budget_minutes") or self.iteration >= total:
            return total
        pace = self.iteration / max(self.trained_seconds(), 1e-9)
        return int(min(total, max(self.iteration + 1, round(pace * self.budget_seconds()))))

    def _batch_stream(self, size: int) -> Iterator[tuple]:
        """Training batches, drawn in the loop or, with ``data_workers``, by that many processes beside it.

        Why: on a GPU the simulation of batches on one CPU core, not the network, sets the pace. Each
        worker draws from its own copy of the sampler, reseeded from the run's seed, the iteration the
        stream starts at and the worker's index, so a run is reproducible for a given worker count.
        """
        workers = int(self.config["data_workers"])
        if workers == 0:
            while True:
                yield self.sampler.draw(size)
        stream = _SamplerStream(self.sampler, size, [int(self.config["seed"]), self.iteration])
        loader = torch.utils.data.DataLoader(
            stream, batch_size=None, num_workers=workers, collate_fn=_unchanged, prefetch_factor=4
        )
        yield from loader

    def step(self, x: np.ndarray, y: np.ndarray, k: np.ndarray | None) -> tuple[torch.Tensor, float]:
        """One optimisation step on a batch: this iteration's learning rate, the loss (mirrored on every
        other iteration), backward and the optimiser; returns the loss and the rate. A non-finite loss
        stops before the step, so the weights stay as they were."""
        lr = self.learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        flip = bool(self.config["flip"]) and self.iteration % 2 == 1
        loss = self.loss(x, y, k, flip)
        if not torch.isfinite(loss):
            raise self._diverged(float(loss.item()))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.iteration += 1
        return loss, lr

    def run(self, progress: ProgressCallback | None = None) -> Path:
        """Train to ``iterations``; returns the exported model (best validation loss, else last)."""
        from torch.utils.tensorboard import SummaryWriter

        total = int(self.config["iterations"])
        every = max(1, int(self.config["checkpoint_every"]))
        log = _CsvLog(self.run_dir / "log.csv", self.iteration)
        writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.iteration or None)
        self.network.train()
        batch = int(self.config["batch_size"])
        started = self.segment_start = time.time()
        batches = self._batch_stream(batch)
        try:
            while self.iteration < total and not self.stopped_early:
                loss, lr = self.step(*next(batches))
                if self.config.get("time_budget_minutes") and self.trained_seconds() >= self.budget_seconds():
                    total = self.iteration  # the time is spent: this is the last iteration
                row = {"iteration": self.iteration, "train_loss": loss.item(), "val_loss": float("nan"), "lr": lr}
                if self.iteration % self.iterations_per_epoch == 0 or self.iteration == total:
                    row["val_loss"] = self.validate()
                    if row["val_loss"] < self.best_val:
                        self.best_val = row["val_loss"]
                        self.save("best.pt")
                    if self.stopper is not None and self.stopper.update(row["val_loss"]):
                        total = self.iteration  # early stop: this is the last iteration
                        self.stopped_early = True
                row["seconds"] = time.time() - started
                log.write(row)
                writer.add_scalar("loss/train", row["train_loss"], self.iteration)
                if np.isfinite(row["val_loss"]):
                    writer.add_scalar("loss/val", row["val_loss"], self.iteration)
                if self.iteration % every == 0 or self.iteration == total:
                    self.save("last.pt")
                if progress is not None:
                    progress(self.iteration, self._expected_total(total), row)
        finally:
            batches.close()
            writer.close()
            log.close()
        best = self.run_dir / "checkpoints" / "best.pt"
        source = best if best.is_file() else self.run_dir / "checkpoints" / "last.pt"
        return export_model(source, self.run_dir / "model.pt")


class _SamplerStream(torch.utils.data.IterableDataset):
    """Endless batches of a sampler; each worker process reseeds its copy with ``seed`` and its index."""

    def __init__(self, sampler: Any, size: int, seed: list[int]):
        super().__init__()
        self.sampler, self.size, self.seed = sampler, size, seed

    def __iter__(self) -> Iterator[tuple]:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        # each worker is one of several processes: threads would only compete. Numpy's BLAS counts too: on a
        # 16-core GPU machine, 12 workers left at 16 BLAS threads each gave three runs one batch a second
        # each (scripts/bench_worker_threads.py measures the effect)
        torch.set_num_threads(1)
        threadpool_limits(1)
        # in place, since samplers may hold bound references to their generator
        self.sampler.rng.bit_generator.state = np.random.default_rng([*self.seed, worker]).bit_generator.state
        while True:
            yield self.sampler.draw(self.size)


def _unchanged(batch: tuple) -> tuple:
    """The DataLoader's conversion step, left out: the loss functions take the sampler's numpy arrays."""
    return batch


class _CsvLog:
    """Appends rows to log.csv; on resume, rows after the checkpoint's iteration are dropped."""

    FIELDS = ("iteration", "train_loss", "val_loss", "lr", "seconds")

    def __init__(self, path: Path, resume_iteration: int):
        rows = []
        if path.is_file() and resume_iteration:
            with open(path, newline="") as handle:
                rows = [r for r in csv.DictReader(handle) if int(r["iteration"]) <= resume_iteration]
        self.handle = open(path, "w", newline="")
        self.writer = csv.DictWriter(self.handle, fieldnames=self.FIELDS, extrasaction="ignore")
        self.writer.writeheader()
        self.writer.writerows(rows)

    def write(self, row: dict[str, float]) -> None:
        self.writer.writerow(row)
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def _skip_missing(network: torch.nn.Module, state: dict) -> bool:
    """Whether ``state`` holds every weight of ``network`` but its input-skip gain (a ParamNet without one)."""
    missing = set(network.state_dict()) - set(state)
    return bool(missing) and all(key.startswith("skip.") for key in missing)


def export_model(checkpoint: str | Path, out: str | Path) -> Path:
    """Strip the training state from a run checkpoint, leaving a self-describing model file."""
    payload = read_checkpoint(checkpoint)
    payload.pop("extra", None)
    with atomic_path(out) as tmp:
        torch.save(payload, tmp)
    return Path(out)


def train(
    config: dict[str, Any] | None = None,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    progress: ProgressCallback | None = None,
    resume_overrides: dict[str, Any] | None = None,
    *,
    defaults: dict[str, Any] | None = None,
    trainer_class: type[Trainer] | None = None,
) -> Path:
    """Start a run in ``run_dir`` with ``config``, or continue the run in ``resume``; returns the model file.

    A resumed run keeps its saved config; only the settings in ``RESUME_OVERRIDABLE`` (to train
    longer, say) may change, and the change is saved with the run. ``defaults`` and ``trainer_class``
    select another task's loop (super-resolution: ``sr_training``).
    """
    trainer_class = trainer_class or Trainer
    if resume is not None:
        run_dir = Path(resume)
        config_path = run_dir / "config.yaml"
        last = run_dir / "checkpoints" / "last.pt"
        if not config_path.is_file():
            raise MRSynthError(f"{run_dir} is not a training run (no config.yaml): give the run directory to resume")
        config = load_config(config_path, defaults=defaults)
        if resume_overrides:
            refused = sorted(set(resume_overrides) - RESUME_OVERRIDABLE)
            if refused:
                raise MRSynthError(
                    f"{', '.join(refused)} cannot change in a resumed run (only {', '.join(sorted(RESUME_OVERRIDABLE))}"
                    "): start a new run instead"
                )
            config = load_config(config_path, resume_overrides, defaults)
            _write_config(config, run_dir)
        trainer = trainer_class(config, run_dir)
        if last.is_file():
            trainer.restore(last)
        return trainer.run(progress)
    if config is None or run_dir is None:
        raise MRSynthError("give a config and a run directory, or --resume RUN_DIR")
    run_dir = Path(run_dir)
    if (run_dir / "checkpoints" / "last.pt").exists():
        raise MRSynthError(f"{run_dir} already holds a run: continue it with --resume {run_dir} or choose a new folder")
    if not run_dir.parent.is_dir():
        raise MRSynthError(f"folder {run_dir.parent} does not exist: create it first")
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    trainer = trainer_class(config, run_dir)
    _write_config(config, run_dir)
    return trainer.run(progress)


def _write_config(config: dict[str, Any], run_dir: Path) -> None:
    with atomic_path(run_dir / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
