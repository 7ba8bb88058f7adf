"""High-to-low training on simulated cases: sampling, loss, logs, and resume after a killed run."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import yaml

from mrsynth.checkpoint import load_checkpoint, read_checkpoint
from mrsynth.data import Case, PatchSampler, sampling_mask
from mrsynth.errors import MRSynthError
from mrsynth.highlow import downsample_lr, offset_kernel_combinations
from mrsynth.input_levels import training_levels
from mrsynth.simulate import bundled_phantom, simulate
from mrsynth.training import load_config, train
from mrsynth.volume_io import to_paper

PATCH = [24, 24, 16]


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[Path]:
    """Two small subjects simulated from pieces of the bundled BrainWeb phantom."""
    phantom = bundled_phantom()
    root = tmp_path_factory.mktemp("cases")
    folders = []
    for i, start in enumerate([(60, 50, 50), (100, 70, 60)]):
        piece = sitk.RegionOfInterest(phantom, (48, 44, 40), start)
        folders.append(root / f"case{i}")
        simulate(piece, "brainweb", folders[-1], seed=i)
    return folders


def _config(cases: list[Path], **overrides) -> dict:
    base = {
        "data": {"train": [str(c) for c in cases], "val": [str(cases[0])]},
        "model": {"width": 2, "blocks_per_stage": 1},
        "patch": PATCH,
        "batch_size": 2,
        "iterations": 6,
        "epoch_patches": 4,
        "val_patches": 2,
        "checkpoint_every": 1,
        "threads": 1,
        "device": "cpu",
    }
    base.update(overrides)
    return load_config(None, base)


def test_fig3_combinations_average_to_the_simulated_slice_profile():
    """Noise-free: the six (offset, kernel) combinations, averaged, reproduce the thick slices exactly."""
    piece = sitk.RegionOfInterest(bundled_phantom(), (40, 40, 40), (70, 60, 60))
    sim = simulate(piece, "brainweb", snr=math.inf)
    hr, thick = to_paper(sim["TSE_HR"]), to_paper(sim["TSE_thick"])
    j0, n = 2, 4
    reduced = [
        downsample_lr(torch.from_numpy(hr[..., 4 * j0 + o : 4 * j0 + o + 4 * n]), k).numpy()
        for o, k in offset_kernel_combinations(1)
    ]
    np.testing.assert_allclose(np.mean(reduced, axis=0), thick[..., j0 : j0 + n], atol=1e-5)
    # A misaligned scheme (pair assumed at slices 4j, 4j+1) does not.
    wrong = [
        downsample_lr(torch.from_numpy(hr[..., 4 * j0 + o : 4 * j0 + o + 4 * n]), k).numpy()
        for o, k in offset_kernel_combinations(0)
    ]
    assert np.abs(np.mean(wrong, axis=0) - thick[..., j0 : j0 + n]).max() > 1e-2


def test_sampler_cuts_input_and_target_where_the_combination_says(cases):
    case = Case.load(cases[0], ["GE_aOP", "GE_aIP"], "TSE_thick", "head_mask", PATCH)
    sampler = PatchSampler([case], tuple(PATCH), pair_start=1, rng=np.random.default_rng(0))
    combos = offset_kernel_combinations(1)
    seen = set()
    for _ in range(30):
        x, y, k = sampler.draw(1)
        assert x.shape == (1, 2, *PATCH) and y.shape == (1, 1, PATCH[0], PATCH[1], PATCH[2] // 4)
        # Locate the patches in the volume by exact match along every axis.
        si, ap, hr0 = _locate(case.inputs[0], x[0, 0])
        sj, aj, j0 = _locate(case.target, y[0, 0])
        assert (si, ap) == (sj, aj)
        offset = hr0 - 4 * j0
        assert (offset, tuple(k[0])) in [(o, tuple(np.float32(kk))) for o, kk in combos]
        seen.add(offset)
    assert seen == {1, 0, -1}


def _locate(volume: np.ndarray, patch: np.ndarray) -> tuple[int, int, int]:
    for start in np.ndindex(*(np.array(volume.shape) - patch.shape + 1)):
        window = volume[tuple(slice(s, s + p) for s, p in zip(start, patch.shape))]
        if np.array_equal(window, patch):
            return start
    raise AssertionError("patch not found in the volume")


def test_sampling_mask_is_a_box_dilation():
    mask = np.zeros((30, 30, 30), bool)
    mask[15, 15, 15] = True
    dilated = sampling_mask(mask, (5, 7, 3))
    assert dilated.sum() == 5 * 7 * 3
    assert dilated[13:18, 12:19, 14:17].all()


def test_training_writes_logs_checkpoints_and_a_self_describing_model(cases, tmp_path):
    model_path = train(_config(cases), tmp_path / "run")
    loaded = load_checkpoint(model_path)
    assert loaded.info.inputs == ["GE_aOP", "GE_aIP"]
    assert loaded.info.patch == PATCH and loaded.info.voxel_size == [1.0, 1.0, 1.0]
    assert loaded.info.training["pair_start"] == 1  # the simulator's slice profile peaks on slices 4j+1, 4j+2
    assert "extra" not in read_checkpoint(model_path)  # exported model holds no optimizer state
    # the training inputs' levels as synthesize measures a scan's, for its out-of-range warning
    levels = loaded.info.normalisation["input_levels"]
    assert levels == pytest.approx(training_levels(cases, ["GE_aOP", "GE_aIP"]), rel=1e-3)
    with open(tmp_path / "run" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 7))
    assert any(Path(tmp_path / "run" / "tensorboard").iterdir())
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["iterations"] == 6


def test_new_run_refuses_an_existing_run(cases, tmp_path):
    train(_config(cases, iterations=1), tmp_path / "run")
    with pytest.raises(MRSynthError, match="--resume"):
        train(_config(cases, iterations=1), tmp_path / "run")


def test_unknown_setting_is_refused():
    with pytest.raises(MRSynthError, match="unknown setting"):
        load_config(None, {"learning_rat": 0.1})


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def test_resume_after_a_killed_run_matches_an_uninterrupted_run(cases, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_config(cases, iterations=100000)))
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mrsynth", "train", "--config", str(config), "--run-dir", str(run)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = run / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if last.is_file() and read_checkpoint(last)["extra"]["iteration"] >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("training never wrote a checkpoint at iteration 3")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    reached = int(read_checkpoint(last)["extra"]["iteration"])
    target = reached + 3
    resumed = subprocess.run(
        [sys.executable, "-m", "mrsynth", "train", "--resume", str(run), "--set", f"iterations={target}"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    straight = train(_config(cases, iterations=target), tmp_path / "straight")
    a, b = _weights(run / "checkpoints" / "last.pt"), _weights(tmp_path / "straight" / "checkpoints" / "last.pt")
    assert read_checkpoint(run / "checkpoints" / "last.pt")["extra"]["iteration"] == target
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
    with open(run / "log.csv") as handle:
        iterations = [int(r["iteration"]) for r in csv.DictReader(handle)]
    assert iterations == list(range(1, target + 1))  # rows written after the checkpoint were dropped once
    assert straight.is_file()


def test_resume_refuses_changing_the_model(cases, tmp_path):
    train(_config(cases, iterations=1), tmp_path / "run")
    with pytest.raises(MRSynthError, match="cannot change in a resumed run"):
        train(resume=tmp_path / "run", resume_overrides={"model": {"width": 4}})


def test_cosine_schedule_decays_to_one_percent_and_constant_stays(cases, tmp_path):
    from mrsynth.training import Trainer

    trainer = Trainer(_config(cases, lr_schedule="cosine", learning_rate=1e-3, iterations=10), tmp_path / "a")
    rates = []
    for i in range(11):
        trainer.iteration = i
        rates.append(trainer.learning_rate())
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-5)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    constant = Trainer(_config(cases, learning_rate=1e-3), tmp_path / "b")
    constant.iteration = 5
    assert constant.learning_rate() == 1e-3


def test_init_weights_starts_from_another_model_and_refuses_a_mismatch(cases, tmp_path):
    from mrsynth.training import Trainer

    first = train(_config(cases, iterations=2), tmp_path / "first")
    second = Trainer(_config(cases, init_weights=str(first)), tmp_path / "second")
    for name, value in read_checkpoint(first)["state_dict"].items():
        torch.testing.assert_close(second.network.state_dict()[name], value)
    with pytest.raises(MRSynthError, match="does not fit"):
        Trainer(_config(cases, init_weights=str(first), model={"width": 3, "blocks_per_stage": 1}), tmp_path / "c")


@pytest.mark.parametrize("source", ["HighResNet", "PointwiseNet"])
def test_init_weights_from_one_part_starts_a_branched_highresnet_at_that_model(cases, tmp_path, source):
    """A HighResNet with the per-voxel branch starts from a model holding one of its parts (a plain
    HighResNet, or the branch alone as a PointwiseNet): the other part starts at zero output, so that
    it predicts exactly what the source model did, and then both train."""
    from mrsynth.training import Trainer

    model = {"width": 2, "blocks_per_stage": 1, "pointwise_width": 4}
    parts = {"HighResNet": model | {"pointwise_width": 0}, "PointwiseNet": model | {"architecture": "PointwiseNet"}}
    first = train(_config(cases, iterations=2, model=parts[source]), tmp_path / "first")
    second = Trainer(_config(cases, init_weights=str(first), model=model), tmp_path / "second")
    source_network = load_checkpoint(first).network.eval()
    network = second.network.eval()
    x = torch.randn(1, 2, *PATCH)
    with torch.no_grad():
        torch.testing.assert_close(network(x), source_network(x))
    silent = network.pointwise[-1] if source == "HighResNet" else network.head
    assert silent.weight.abs().sum() == 0
    path = train(_config(cases, init_weights=str(first), model=model, iterations=2), tmp_path / "third")
    trained = load_checkpoint(path).network
    assert trained.pointwise[-1].weight.abs().sum() > 0 and trained.head.weight.abs().sum() > 0
    other = {"width": 3} if source == "HighResNet" else {"pointwise_width": 3}  # the part it holds, resized
    with pytest.raises(MRSynthError, match="does not fit"):
        Trainer(_config(cases, init_weights=str(first), model=model | other), tmp_path / "fourth")


def test_unet_with_mind_loss_trains_and_is_described_in_its_checkpoint(cases, tmp_path):
    model = {"architecture": "UNet", "width": 2, "levels": 3, "batch_norm": True, "padding": "zeros"}
    path = train(_config(cases, model=model, mind_weight=0.1, iterations=2), tmp_path / "run")
    loaded = load_checkpoint(path)
    assert loaded.info.architecture == "UNet" and loaded.info.arguments["batch_norm"] is True
    assert loaded.info.training["config"]["mind_weight"] == 0.1


def test_mind_weight_adds_the_mind_term_to_the_loss(cases, tmp_path):
    from mrsynth.losses import mind_loss
    from mrsynth.training import Trainer

    plain = Trainer(_config(cases), tmp_path / "a")
    with_mind = Trainer(_config(cases, mind_weight=0.1), tmp_path / "b")
    x, y, k = plain.sampler.draw(2)
    l1 = plain.loss(x, y, k, flip=False)
    total = with_mind.loss(x, y, k, flip=False)  # same seed: same initial network
    out = plain.network(torch.from_numpy(x))
    expected = l1 + 0.1 * mind_loss(out, torch.from_numpy(x[:, -1:]), plain.voxel_size)
    assert total.item() == pytest.approx(expected.item(), rel=1e-5) and total.item() > l1.item()


def test_aligned_kernel_scheme_trains_on_one_thick_slice_fewer_per_patch(cases, tmp_path):
    from mrsynth.training import Trainer

    trainer = Trainer(_config(cases, kernel_scheme="aligned"), tmp_path / "a")
    x, y, k = trainer.sampler.draw(2)
    assert y.shape[-1] == PATCH[2] // 4 - 1 and k.shape == (2, 8)
    assert np.isfinite(trainer.loss(x, y, k, flip=True).item())
    path = train(_config(cases, kernel_scheme="aligned", iterations=2), tmp_path / "run")
    assert load_checkpoint(path).info.training["config"]["kernel_scheme"] == "aligned"
    with pytest.raises(MRSynthError, match="kernel_scheme must be fig3 or aligned"):
        Trainer(_config(cases, kernel_scheme="average"), tmp_path / "b")


def test_early_stopping_ends_a_run_and_survives_resume(cases, tmp_path):
    rule = {"patience": 2, "min_delta": 0.5, "sigma": 0}  # no 50 % improvement: stop after 2 more epochs
    run = tmp_path / "run"
    path = train(_config(cases, iterations=40, early_stopping=rule), run)
    info = load_checkpoint(path).info.training
    with open(run / "log.csv") as handle:
        last = int(list(csv.DictReader(handle))[-1]["iteration"])
    assert last == 3 * 2  # 3 validations (epochs of 2 iterations): best at the first, then 2 without
    assert read_checkpoint(run / "checkpoints" / "last.pt")["extra"]["stopped_early"]
    assert info["iterations"] <= last
    train(resume=run)  # a stopped run stays stopped
    with open(run / "log.csv") as handle:
        assert int(list(csv.DictReader(handle))[-1]["iteration"]) == last
    with pytest.raises(MRSynthError, match="early_stopping takes"):
        train(_config(cases, early_stopping={"patience": 2, "wait": 3}), tmp_path / "bad")


def test_bfloat16_precision_runs_the_network_alone_in_bfloat16_and_keeps_float32_weights(cases, tmp_path):
    from mrsynth.training import Trainer

    full = Trainer(_config(cases, model={"width": 4, "blocks_per_stage": 1}), tmp_path / "a")
    half = Trainer(_config(cases, model={"width": 4, "blocks_per_stage": 1}, precision="bfloat16"), tmp_path / "b")
    x, y, k = full.sampler.draw(2)
    xt = torch.from_numpy(x)
    exact, reduced = full.forward(full.network, xt), half.forward(half.network, xt)  # same seed: same weights
    assert reduced.dtype == torch.float32 and not torch.equal(exact, reduced)  # bfloat16 inside, float32 out
    assert (reduced - exact).abs().max().item() < 0.02 * exact.abs().max().item()  # 8-bit mantissa, not garbage
    assert half.loss(x, y, k, flip=False).item() == pytest.approx(full.loss(x, y, k, flip=False).item(), rel=0.02)
    path = train(_config(cases, precision="bfloat16", iterations=3), tmp_path / "run")
    assert all(p.dtype == torch.float32 for p in load_checkpoint(path).network.parameters())
    # a run may change precision when it resumes (as it may change device); other values are refused
    train(resume=tmp_path / "run", resume_overrides={"precision": "float32", "iterations": 4})
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["extra"]["iteration"] == 4
    with pytest.raises(MRSynthError, match="precision must be float32 or bfloat16, not 'fp16'"):
        train(_config(cases, precision="fp16"), tmp_path / "bad")
