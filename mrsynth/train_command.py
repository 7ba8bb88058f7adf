"""``mrsynth train``: start or resume a High-to-low training run with a progress bar."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from .errors import MRSynthError


def add_train_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on paired case folders (High-to-low approach)",
        description="Train a contrast-synthesis model with the High-to-low approach of paper 000. Settings come "
        "from --config (YAML or JSON; every key of mrsynth.training.DEFAULTS) and --set overrides. A killed run "
        "continues from its last checkpoint with --resume RUN_DIR.",
    )
    parser.add_argument(
        "--task",
        choices=["high-to-low", "superres", "encoder", "ct2mr", "reparam", "mri2mri"],
        help="high-to-low contrast synthesis (default; settings: mrsynth.training.DEFAULTS) or super-resolution "
        "(paper 003, MRSR; settings: mrsynth.sr_training.SR_DEFAULTS); a resumed run keeps its own; "
        "encoder: the MR feature autoencoder of paper 001 (settings: mrsynth.encoder_training.ENCODER_DEFAULTS); "
        "ct2mr: DRUNet CT -> MR of paper 004 (settings: mrsynth.ct_training.CT_DEFAULTS); "
        "reparam: re-parameterisation on TR/TE (paper 001, Param-Net; settings: "
        "mrsynth.reparam_training.REPARAM_DEFAULTS); "
        "mri2mri: MRI2MRI contrast mapping of paper 002 (settings: mrsynth.mri2mri.MRI2MRI_DEFAULTS)",
    )
    parser.add_argument("--config", help="YAML/JSON file with the run's settings")
    parser.add_argument("--run-dir", help="new folder for the run (config, log.csv, tensorboard/, checkpoints/)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting (with --resume: iterations, checkpoint_every, device, threads), dotted keys for "
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

    from .reparam_training import REPARAM_DEFAULTS, ReparamTrainer
    from .sr_training import SR_DEFAULTS, SRTrainer
    from .training import load_config, train

    if args.resume and (args.config or args.run_dir or args.task):
        raise MRSynthError("--resume continues a run with its saved config: leave out --config, --run-dir and --task")
    if not args.resume and not args.run_dir:
        raise MRSynthError("give --run-dir for a new run, or --resume RUN_DIR to continue one")
    overrides = parse_overrides(args.set)
    task = _saved_task(args.resume) if args.resume else (args.task or _config_task(args.config))
    task_options: dict[str, Any] = {"defaults": SR_DEFAULTS, "trainer_class": SRTrainer} if task == "superres" else {}
    if task == "encoder":
        from .encoder_training import ENCODER_DEFAULTS, EncoderTrainer

        task_options = {"defaults": ENCODER_DEFAULTS, "trainer_class": EncoderTrainer}
    if task == "ct2mr":
        from .ct_training import CT_DEFAULTS, CTTrainer

        task_options = {"defaults": CT_DEFAULTS, "trainer_class": CTTrainer}
    if task == "reparam":
        task_options = {"defaults": REPARAM_DEFAULTS, "trainer_class": ReparamTrainer}
    if task == "mri2mri":
        from .mri2mri import MRI2MRI_DEFAULTS, Mri2MriTrainer

        task_options = {"defaults": MRI2MRI_DEFAULTS, "trainer_class": Mri2MriTrainer}
    config = None if args.resume else load_config(args.config, overrides, task_options.get("defaults"))
    bar = tqdm(unit="it", dynamic_ncols=True)

    def progress(done: int, total: int, row: dict[str, float]) -> None:
        bar.total = total
        if bar.n == 0 and done > 1:
            bar.n = done - 1
        bar.set_postfix(loss=f"{row['train_loss']:.4f}", val=f"{row['val_loss']:.4f}", refresh=False)
        bar.update(done - bar.n)

    try:
        model = train(
            config, args.run_dir, resume=args.resume, progress=progress, resume_overrides=overrides, **task_options
        )
    finally:
        bar.close()
    print(f"model written to {model}")
    return 0


def _config_task(path: str | None) -> str:
    """The task a config file names (``task: superres`` or ``reparam``), else High-to-low."""
    if not path:
        return "high-to-low"
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return "high-to-low"  # load_config reports the problem with the file
    known = ("superres", "encoder", "ct2mr", "reparam", "mri2mri")
    return loaded["task"] if isinstance(loaded, dict) and loaded.get("task") in known else "high-to-low"


def _saved_task(run_dir: str) -> str:
    return _config_task(str(Path(run_dir) / "config.yaml")) if (Path(run_dir) / "config.yaml").is_file() else ""
