"""Fit the blend of a chained Param-to-Param model (``paramnet.ChainedParamNet``) with its stages frozen.

The draws are ``--config``'s (the training and validation subjects, settings, crops); the loss is the
relative MSE, by which each setting is judged against rescaling. Writes the blended model and prints
the validation history.

    PYTHONPATH=. python scripts/fit_chain_blend.py reparam-param-sim --out BLENDED.pt --version 6
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from mrsynth.checkpoint import save_checkpoint
from mrsynth.models import load_model
from mrsynth.reparam_chain import fit_blend
from mrsynth.reparam_data import Anatomy
from mrsynth.reparam_training import REPARAM_DEFAULTS, _files
from mrsynth.train_command import parse_overrides
from mrsynth.training import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a chained Param-to-Param model (registry name or checkpoint)")
    parser.add_argument("--config", default="configs/reparam-param-sim.yaml", help="subjects and draws")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--learning-rate", type=float, default=1.0e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--version", help="the written model's version (default: the model's)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config, parse_overrides(args.set), REPARAM_DEFAULTS)
    data = config["data"]
    train = [Anatomy.from_file(p, data["atlas"], int(data["slices"])) for p in _files(data["train"], "train")]
    val = [Anatomy.from_file(p, data["atlas"], int(data["slices"])) for p in _files(data["val"], "val")]
    with tqdm(total=args.iterations) as bar:

        def progress(done: int, total: int, loss: float) -> None:
            bar.update(done - bar.n)
            bar.set_postfix(loss=f"{loss:.4f}")

        model, history = fit_blend(
            load_model(args.model), train, val, config, args.iterations, args.learning_rate, args.seed, progress
        )
    for iteration, loss in history:
        print(f"iteration {iteration}: validation relative MSE {loss:.4f}")
    if args.version:
        model.info.version = args.version
    print(f"wrote {save_checkpoint(args.out, model.network, model.info)}")


if __name__ == "__main__":
    main()
