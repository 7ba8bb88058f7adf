"""Training beside data workers, and to a time budget: options for GPU runs, where simulating batches
on one CPU core, not the network, sets the pace, and where device time is what is short."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from mrsynth.errors import MRSynthError
from mrsynth.reparam_data import Anatomy
from mrsynth.reparam_training import REPARAM_DEFAULTS, ReparamSampler, ReparamTrainer, train_reparam
from mrsynth.training import _SamplerStream, _unchanged, load_config


def _labels(shared_data) -> str:
    return str(shared_data / "synthseg_labels" / "training_seg_01.nii.gz")


def _config(train: list[str], **settings) -> dict:
    overrides = {"variant": "param", "data": {"train": train, "val": [], "slices": 4},
                 "model": {"width": 4, "levels": 2}, "crop": 32, "batch_size": 4, "draws": 2, "iterations": 3,
                 "threads": 1} | settings  # fmt: skip
    return load_config(None, overrides, REPARAM_DEFAULTS)


def test_an_anatomy_saved_as_arrays_loads_as_its_label_map_does_and_refuses_other_settings(shared_data, tmp_path):
    anatomy = Anatomy.from_file(_labels(shared_data), "synthseg", 4)
    path = tmp_path / "seg_01.npz"
    anatomy.save(path, "synthseg", 4)
    again = Anatomy.from_file(str(path), "synthseg", 4)
    assert again.name == anatomy.name
    assert np.array_equal(again.tissues, anatomy.tissues) and np.array_equal(again.head, anatomy.head)
    with pytest.raises(MRSynthError, match="slices 4, not synthseg and 24"):
        Anatomy.from_file(str(path), "synthseg", 24)
    with pytest.raises(MRSynthError, match="not brainweb"):
        Anatomy.from_file(str(path), "brainweb", 4)


def test_each_worker_draws_its_own_reproducible_batches(shared_data, monkeypatch):
    anatomy = Anatomy.from_file(_labels(shared_data), "synthseg", 4)
    config = _config([])

    def first_batches(worker: int, seed: list[int]) -> list:
        sampler = ReparamSampler([anatomy], config, np.random.default_rng(0))
        monkeypatch.setattr("torch.utils.data.get_worker_info", lambda: type("Info", (), {"id": worker})())
        stream = iter(_SamplerStream(sampler, 4, seed))
        return [next(stream) for _ in range(2)]

    a, again, other, later = (
        first_batches(0, [7, 0]),
        first_batches(0, [7, 0]),
        first_batches(1, [7, 0]),
        first_batches(0, [7, 10]),
    )
    for x, y in zip(a, again, strict=True):
        assert all(np.array_equal(u, v) for u, v in zip(x, y, strict=True))
    # another worker, or a stream started at another iteration (a resumed run), draws other settings and crops
    assert not np.array_equal(a[0][2], other[0][2]) and not np.array_equal(a[0][0], other[0][0])
    assert not np.array_equal(a[0][2], later[0][2])


def test_a_run_with_data_workers_trains_and_exports(shared_data, tmp_path):
    from mrsynth.checkpoint import load_checkpoint

    model = load_checkpoint(train_reparam(_config([_labels(shared_data)], data_workers=2), tmp_path / "run"))
    assert model.info.training["iterations"] == 3
    assert model.info.training["config"]["data_workers"] == 2



def test_a_batch_normalised_paramnet_trains_in_bfloat16(shared_data, tmp_path):
    """Batch norm under autocast: the bfloat16 path of a network with normalisation layers trains too."""
    from mrsynth.checkpoint import load_checkpoint

    model = load_checkpoint(train_reparam(_config([_labels(shared_data)], precision="bfloat16"), tmp_path / "run"))
    assert model.info.training["config"]["precision"] == "bfloat16"
    assert all(p.dtype == torch.float32 and p.isfinite().all() for p in model.network.parameters())

def test_a_time_budget_ends_the_run_with_its_cosine_spent_and_is_resumable(shared_data, tmp_path):
    from mrsynth.checkpoint import read_checkpoint
    from mrsynth.training import train

    config = _config([_labels(shared_data)], iterations=100000, time_budget_minutes=0.02, checkpoint_every=1000)
    reports = []
    train_reparam(config, tmp_path / "run", progress=lambda done, total, row: reports.append((done, total)))
    with open(tmp_path / "run" / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert 1 <= len(rows) < 100000  # stopped by the clock, not by the iterations
    # progress bars get the iterations the clock allows, not the 100000 cap, and the last report is the end
    assert all(done <= total < 100000 for done, total in reports) and reports[-1] == (len(rows), len(rows))
    base = float(config["learning_rate"])
    assert float(rows[-1]["lr"]) < 0.9 * base  # the clock, not the 100000 iterations, drove the cosine
    trainer = ReparamTrainer(config, tmp_path / "probe")
    for spent, expected in ((0.0, 1.0), (0.6, 0.505), (1.2, 0.01), (5.0, 0.01)):  # seconds of the 1.2 s budget
        trainer.seconds_before = spent
        assert trainer.learning_rate() == pytest.approx(expected * base)
    extra = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["extra"]
    assert extra["iteration"] == len(rows) and extra["seconds"] >= 1.2
    # resumed with a longer budget, the run goes on from its saved training time
    train(resume=tmp_path / "run", resume_overrides={"time_budget_minutes": 0.04}, defaults=REPARAM_DEFAULTS,
          trainer_class=ReparamTrainer)  # fmt: skip
    more = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["extra"]
    assert more["iteration"] > extra["iteration"] and 2.4 <= more["seconds"] < 2.4 + extra["seconds"]


def test_bad_worker_counts_and_budgets_are_refused(shared_data, tmp_path):
    with pytest.raises(MRSynthError, match="data_workers must be 0"):
        train_reparam(_config([_labels(shared_data)], data_workers=-1), tmp_path / "a")
    with pytest.raises(MRSynthError, match="time_budget_minutes must be positive"):
        train_reparam(_config([_labels(shared_data)], time_budget_minutes=-1), tmp_path / "b")


class _ThreadCountingSampler:
    """A stand-in sampler whose batches report the worker's thread counts (torch's and numpy's BLAS)."""

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def draw(self, size: int) -> tuple:
        from threadpoolctl import threadpool_info

        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
        return np.full(size, torch.get_num_threads()), np.asarray(blas), None


def test_data_workers_run_one_thread_each_numpy_blas_included():
    loader = torch.utils.data.DataLoader(
        _SamplerStream(_ThreadCountingSampler(), 2, [0, 0]), batch_size=None, num_workers=1, collate_fn=_unchanged
    )
    torch_threads, blas_threads, _ = next(iter(loader))
    assert set(torch_threads) == {1} and blas_threads.size and set(blas_threads) == {1}


def test_a_diverging_run_stops_with_a_clear_error_naming_its_last_finite_checkpoint(shared_data, tmp_path):
    from mrsynth.checkpoint import read_checkpoint

    labels = [_labels(shared_data)]
    train_reparam(_config(labels, iterations=2, checkpoint_every=1), tmp_path / "good")
    start = tmp_path / "good" / "checkpoints" / "last.pt"
    # Adam moves every weight by about the learning rate: at 1e30 the output overflows within a few steps
    config = _config(labels, iterations=50, checkpoint_every=1, learning_rate=1e30, init_weights=str(start))
    with pytest.raises(MRSynthError, match=r"training diverged: the loss became (inf|nan) at iteration \d+") as error:
        train_reparam(config, tmp_path / "run")
    assert "lower learning_rate" in str(error.value) and "holds finite weights" in str(error.value)
    last = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
    assert f"iteration {last['extra']['iteration']})" in str(error.value)
    # diverging before any checkpoint: nothing to go on from, and the message says so
    with pytest.raises(MRSynthError, match="no checkpoint with finite weights was written"):
        train_reparam(_config(labels, iterations=50, checkpoint_every=1000, learning_rate=1e30), tmp_path / "fresh")
