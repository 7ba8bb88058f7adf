"""Data workers with numpy's BLAS left at its default thread count against one thread each.

Why: ``training._SamplerStream`` limits every data worker to one BLAS thread. On the 16-core GPU
machine, 12 workers (3 runs of 4) left at the default drew about one batch per second per run. This
runs ``--processes`` samplers at once, as workers would, each drawing ``--batches`` re-parameterisation
batches of ``--config``, first with the default BLAS threads, then with one, and prints the median
seconds per batch of each and their ratio.

    PYTHONPATH=. python scripts/bench_worker_threads.py --processes 6
"""

from __future__ import annotations

import argparse
import glob
import multiprocessing
import statistics
import time

import numpy as np
import torch

LABELS = "../shared/data/synthseg_labels/training_seg_0[1-3].nii.gz"


def _draw_times(config_path: str, seed: int, batches: int, one_thread: bool, queue: multiprocessing.Queue) -> None:
    from threadpoolctl import threadpool_limits

    from mrsynth.reparam_data import Anatomy
    from mrsynth.reparam_training import REPARAM_DEFAULTS, ReparamSampler
    from mrsynth.training import load_config

    torch.set_num_threads(1)
    config = load_config(config_path, {}, REPARAM_DEFAULTS)
    anatomies = [Anatomy.from_file(p, "synthseg", int(config["data"]["slices"])) for p in sorted(glob.glob(LABELS))]
    sampler = ReparamSampler(anatomies, config, np.random.default_rng(seed))
    if one_thread:
        threadpool_limits(1)
    sampler.draw(int(config["batch_size"]))  # warm-up
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        sampler.draw(int(config["batch_size"]))
        times.append(time.perf_counter() - start)
    queue.put(times)


def _median_seconds(args: argparse.Namespace, one_thread: bool) -> float:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(target=_draw_times, args=(args.config, seed, args.batches, one_thread, queue))
        for seed in range(args.processes)
    ]
    for p in processes:
        p.start()
    times = [t for _ in processes for t in queue.get()]
    for p in processes:
        p.join()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/reparam-param-gpu.yaml")
    parser.add_argument("--processes", type=int, default=6, help="samplers drawing at once, as data workers")
    parser.add_argument("--batches", type=int, default=3, help="timed batches per process")
    args = parser.parse_args()
    default = _median_seconds(args, one_thread=False)
    single = _median_seconds(args, one_thread=True)
    print(f"{args.processes} processes, median seconds per batch: default BLAS threads {default:.3f}, "
          f"one BLAS thread {single:.3f}; ratio {default / single:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
