"""Training-step speed of 3D networks in the contiguous vs the channels-last memory layout.

The trainers (``training.Trainer``) put 3D networks and their batches in the channels-last layout;
this measures why, side by side in one run: rounds alternate between the layouts, and the medians
and their ratio are printed. One step is forward, L2 loss, backward and an Adam update.

    PYTHONPATH=. python scripts/bench_training_layout.py --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mrsynth.networks import MRSR, HighResNet

NETWORKS = {
    "MRSR 12 x 16 (superres-x4-sim), batch 4 of 32^3": (lambda: MRSR(1, 1, 12, 16), (4, 1, 32, 32, 32)),
    "HighResNet width 8 (gre-to-tse-sim), batch 2 of 56x56x32": (
        lambda: HighResNet(in_channels=2, width=8, blocks_per_stage=1),
        (2, 2, 56, 56, 32),
    ),
}


def step_seconds(make, shape: tuple[int, ...], channels_last: bool, steps: int) -> list[float]:
    torch.manual_seed(0)
    network = make()
    x, y = torch.randn(shape), torch.randn((shape[0], 1, *shape[2:]))
    if channels_last:
        network = network.to(memory_format=torch.channels_last_3d)
        x, y = (t.contiguous(memory_format=torch.channels_last_3d) for t in (x, y))
    optimizer = torch.optim.Adam(network.parameters(), 1e-4)
    times = []
    for _ in range(steps + 1):  # the first step warms up and is not counted
        started = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(network(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per layout and round")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name, (make, shape) in NETWORKS.items():
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for channels_last in (False, True):
                times[channels_last] += step_seconds(make, shape, channels_last, args.steps)
        plain, last = float(np.median(times[False])), float(np.median(times[True]))
        print(f"{name}: contiguous {plain:.3f} s/step, channels-last {last:.3f} s/step, "
              f"ratio {plain / last:.2f}x (median of {len(times[True])}, {args.threads} threads)")  # fmt: skip


if __name__ == "__main__":
    main()
