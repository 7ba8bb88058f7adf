"""``mrsynth train``: start or resume a training run of any task with a progress bar."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

import yaml

from .errors import MRSynthError

# Each task's module, its settings with their defaults, and its trainer; imported only when chosen.
TASKS: dict[str, tuple[str, str, str, str]] = {
    "high-to-low": ("training", "DEFAULTS", "Trainer", "contrast synthesis, paper 000 (the default)"),
    "superres": ("sr_training", "SR_DEFAULTS", "SRTrainer", "super-resolution, paper 003 (MRSR)"),
    "encoder": ("encoder_training", "ENCODER_DEFAULTS", "EncoderTrainer", "the MR feature autoencoder, paper 001"),
    "ct2mr": ("ct_training", "CT_DEFAULTS", "CTTrainer", "DRUNet CT -> MR, paper 004"),
    "reparam": ("reparam_training", "REPARAM_DEFAULTS", "ReparamTrainer", "re-parameterisation on TR/TE, paper 001"),
    "mri2mri": ("mri2mri", "MRI2MRI_DEFAULTS", "Mri2MriTrainer", "MRI2MRI contrast mapping, paper 002"),
}


def add_train_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model (High-to-low by default; --task for the other systems)",
        description="Train a model: by default contrast synthesis with the High-to-low approach of paper 000, or "
        "another task (--task, or 'task:' in the config). Settings come from --config (YAML or JSON; the keys of "
        "the task's defaults named below) and --set overrides. A killed run continues from its last checkpoint "
        "with --resume RUN_DIR.",
    )
    parser.add_argument(
        "--task",
        choices=list(TASKS),
        help="; ".join(
            f"{name}: {what} (settings: mrsynth.{module}.{defaults})"
            for name, (module, defaults, _, what) in TASKS.items()
        )
        + "; a resumed run keeps its own task",
    )
    parser.add_argument("--config", help="YAML/JSON file with the run's settings")
    parser.add_argument("--run-dir", help="new folder for the run (config, log.csv, tensorboard/, checkpoints/)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting (with --resume only the run's own: iterations, checkpoint_every, device, threads, "
        "data_workers, time_budget_minutes, precision), dotted keys for "
        "nested ones, YAML values: --set iterations=200 "
        "--set model.width=8 --set 'data.train=[cases/s01, cases/s02]'",
    )
    parser.set_defaults(func=run_train)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn ``a.b=value`` strings into a nested dict with YAML-parsed values."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MRSynthError(f"--set {item!r} is not KEY=VALUE: write e.g. --set iterations=200")
        node = overrides
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return overrides


def run_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .training import load_config, train

    if args.resume and (args.config or args.run_dir or args.task):
        raise MRSynthError("--resume continues a run with its saved config: leave out --config, --run-dir and --task")
    if not args.resume and not args.run_dir:
        raise MRSynthError("give --run-dir for a new run, or --resume RUN_DIR to continue one")
    overrides = parse_overrides(args.set)
    # A missing run folder reads as High-to-low here; train() then says what is missing.
    task = (
        _config_task(str(Path(args.resume) / "config.yaml"))
        if args.resume
        else (args.task or _config_task(args.config))
    )
    module_name, defaults_name, trainer_name, _ = TASKS[task]
    module = importlib.import_module(f".{module_name}", __package__)
    defaults, trainer_class = getattr(module, defaults_name), getattr(module, trainer_name)
    config = None if args.resume else load_config(args.config, overrides, defaults)
    bar = tqdm(unit="it", dynamic_ncols=True)

    def progress(done: int, total: int, row: dict[str, float]) -> None:
        bar.total = total
        if bar.n == 0 and done > 1:
            bar.n = done - 1
        bar.set_postfix(loss=f"{row['train_loss']:.4f}", val=f"{row['val_loss']:.4f}", refresh=False)
        bar.update(done - bar.n)

    try:
        model = train(
            config,
            args.run_dir,
            resume=args.resume,
            progress=progress,
            resume_overrides=overrides,
            defaults=defaults,
            trainer_class=trainer_class,
        )
    finally:
        bar.close()
    print(f"model written to {model}")
    return 0


def _config_task(path: str | None) -> str:
    """The task a config file names (``task: superres`` ...), else High-to-low; an unknown name is refused."""
    if not path:
        return "high-to-low"
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return "high-to-low"  # load_config reports the problem with the file
    if not isinstance(loaded, dict) or "task" not in loaded:
        return "high-to-low"
    if loaded["task"] not in TASKS:
        raise MRSynthError(f"{path} names task {loaded['task']!r}, which is not one of {', '.join(TASKS)}: correct it")
    return loaded["task"]
