"""Time to make one re-parameterisation training batch: crop-only simulation vs the whole stack.

``reparam_data.CropSimulator`` simulates only the crops of a batch and takes the head-wide 99th
percentiles from a fixed sample of head voxels. The peer is what the trainer did before: simulate
the whole stack of axial slices at the input and target settings (``noise_free``, ``acquire``,
``normalise_p99``), then cut the crops. Rounds alternate between the two, side by side in one run;
medians and their ratio are printed, with the network step for scale.

    PYTHONPATH=. python scripts/bench_reparam_data.py --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from mrsynth.masks import normalise_p99
from mrsynth.paramnet import ParamNet
from mrsynth.reparam_data import Anatomy, CropSimulator, acquire, noise_free, sample_parameters, tissue_signals
from mrsynth.simulate import load_spec

LABELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthseg_labels"


def whole_stack_batch(simulator: CropSimulator, crops: list, size: int, rng: np.random.Generator) -> np.ndarray:
    """The former route: both settings simulated on every slice, then the crops cut out."""
    anatomy, spec, psf = simulator.anatomy, simulator.spec, simulator.psf
    source, target = sample_parameters(rng), sample_parameters(rng)
    noisy = acquire(
        noise_free(anatomy.tissues, tissue_signals(source["TR"], source["TE"], spec), psf), anatomy.head, rng
    )
    truth = noise_free(anatomy.tissues, tissue_signals(target["TR"], target["TE"], spec), psf)
    x, y = normalise_p99(noisy, anatomy.head)[0], normalise_p99(truth, anatomy.head)[0]
    return np.stack(
        [np.stack([x[s, a : a + size, b : b + size], y[s, a : a + size, b : b + size]]) for s, a, b in crops]
    )


def crop_batch(simulator: CropSimulator, crops: list, size: int, rng: np.random.Generator) -> np.ndarray:
    x, y = simulator.pairs(sample_parameters(rng), sample_parameters(rng), crops, size, rng)
    return np.stack([x, y], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--draws", type=int, default=4, help="(subject, settings) draws per batch, as in training")
    parser.add_argument("--crops", type=int, default=4, help="crops per draw (batch 16 = 4 x 4, as in training)")
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    if not LABELS.is_dir():
        raise SystemExit(f"{LABELS} is missing: this benchmark needs ../shared/data/synthseg_labels")
    torch.set_num_threads(args.threads)
    spec = load_spec()
    simulators = [
        CropSimulator(Anatomy.from_file(str(LABELS / f"training_seg_{i:02d}.nii.gz"), "synthseg", 24), spec)
        for i in (1, 2)
    ]
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {"whole stack": [], "crops only": []}
    for _ in range(args.rounds):
        for name, make in (("whole stack", whole_stack_batch), ("crops only", crop_batch)):
            started = time.perf_counter()
            for d in range(args.draws):
                simulator = simulators[d % len(simulators)]
                make(simulator, simulator.random_crops(args.size, args.crops, rng), args.size, rng)
            times[name].append(time.perf_counter() - started)
    network = ParamNet(conditions=2, width=8)
    optimizer = torch.optim.Adam(network.parameters())
    batch = torch.rand(args.draws * args.crops, 1, args.size, args.size)
    conditions = torch.rand(len(batch), 2)
    steps = []
    for _ in range(args.rounds + 1):
        started = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(network(batch, conditions), batch).backward()
        optimizer.step()
        steps.append(time.perf_counter() - started)
    whole, crops = float(np.median(times["whole stack"])), float(np.median(times["crops only"]))
    print(
        f"one batch of {args.draws} x {args.crops} crops of {args.size}^2 ({args.threads} thread(s)), medians of "
        f"{args.rounds}: whole stack {whole:.3f} s, crops only {crops:.3f} s, ratio {whole / crops:.1f}x; "
        f"ParamNet width 8 step {float(np.median(steps[1:])):.3f} s"
    )


if __name__ == "__main__":
    main()
