"""Validation L2 of super-resolution models on a training config's validation set, and of its interpolated input.

The set is the one ``mrsynth train`` draws from the config (its ``seed`` picks it), so the numbers
compare with a run's log. The first line is the cubic-interpolated input: an untrained MRSR, whose
last layer starts at zero, returns exactly that.

    PYTHONPATH=. python scripts/sr_validation_loss.py configs/superres-x4-dess-sim.yaml \
        runs/superres-x4-dess-sim-init.pt runs/superres-x4-dess-sim/model.pt [--set seed=2]
"""

from __future__ import annotations

import argparse
import tempfile

from mrsynth.checkpoint import load_checkpoint
from mrsynth.sr_training import SR_DEFAULTS, SRTrainer
from mrsynth.train_command import parse_overrides
from mrsynth.training import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a 'task: superres' training config")
    parser.add_argument("models", nargs="*", help="checkpoints to score on the same set")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides")
    args = parser.parse_args()
    config = load_config(args.config, {**parse_overrides(args.set), "init_weights": None}, SR_DEFAULTS)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = SRTrainer(config, run_dir)
        print(f"cubic-interpolated input: {trainer.validate():.5f}")
        for path in args.models:
            trainer.network.load_state_dict(load_checkpoint(path).network.state_dict())
            print(f"{path}: {trainer.validate():.5f}")


if __name__ == "__main__":
    main()
