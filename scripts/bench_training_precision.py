"""Training in bfloat16 against float32, side by side on a real config: step time and validation loss.

Two trainers of the config's task are built with the same settings and seed, one with ``precision:
float32`` and one with ``precision: bfloat16``, so they start from the same weights and hold the same
validation patches. Each iteration draws one batch and gives it to both, in alternating order; each
trainer takes one step (its loss, backward, Adam) and is timed. The medians of the step times and
their ratio are printed, then each trainer's validation loss (in float32 and in its own precision)
before and after, so that the speed is shown together with what it costs in accuracy.

    PYTHONPATH=. python scripts/bench_training_precision.py configs/gre-to-tse-sim-mind.yaml \\
        --set init_weights=mrsynth/models/gre-to-tse-sim.pt --iterations 60 --threads 1
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from pathlib import Path

import numpy as np

from mrsynth.train_command import TASKS, _config_task, parse_overrides
from mrsynth.training import Trainer, load_config


def step(trainer: Trainer, batch: tuple) -> float:
    """One optimisation step as ``Trainer.run`` takes it (``Trainer.step``); returns its seconds."""
    started = time.perf_counter()
    trainer.step(*batch)
    return time.perf_counter() - started


def validation(trainer: Trainer) -> float:
    """The validation loss with the network in float32, whatever precision the trainer trains in."""
    own = trainer.bf16
    trainer.bf16 = False
    try:
        return trainer.validate()
    finally:
        trainer.bf16 = own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a training config (its 'task:' picks the trainer)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as mrsynth train --set")
    parser.add_argument("--iterations", type=int, default=60, help="steps of each trainer (the first is not timed)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    module_name, defaults_name, trainer_name, _ = TASKS[_config_task(args.config)]
    module = importlib.import_module(f"mrsynth.{module_name}")
    defaults, trainer_class = getattr(module, defaults_name), getattr(module, trainer_name)
    overrides = parse_overrides(args.set) | {"threads": args.threads, "data_workers": 0}
    trainers = {}
    with tempfile.TemporaryDirectory() as scratch:  # the runs' folders: nothing is written there but this
        for precision in ("float32", "bfloat16"):
            config = load_config(args.config, overrides | {"precision": precision}, defaults)
            trainers[precision] = trainer_class(config, Path(scratch) / precision)
        before = {name: (validation(t), t.validate()) for name, t in trainers.items()}
        times: dict[str, list[float]] = {name: [] for name in trainers}
        for i in range(args.iterations):
            batch = trainers["float32"].sampler.draw(int(trainers["float32"].config["batch_size"]))
            order = list(trainers) if i % 2 == 0 else list(reversed(trainers))
            for name in order:
                seconds = step(trainers[name], batch)
                if i:  # the first step warms up
                    times[name].append(seconds)
        after = {name: (validation(t), t.validate()) for name, t in trainers.items()}
    fp32, bf16 = (float(np.median(times[n])) for n in ("float32", "bfloat16"))
    print(f"{args.config}, {args.iterations} steps, {args.threads} thread(s), device {trainers['float32'].device}")
    print(
        f"step time (median of {len(times['float32'])}): float32 {fp32:.3f} s, bfloat16 {bf16:.3f} s, "
        f"ratio {fp32 / bf16:.2f}x"
    )
    for name in trainers:
        (start32, start_own), (end32, end_own) = before[name], after[name]
        print(f"{name}: validation loss {start32:.5f} -> {end32:.5f} (network in float32), "
              f"{start_own:.5f} -> {end_own:.5f} (in its own precision)")  # fmt: skip


if __name__ == "__main__":
    main()
