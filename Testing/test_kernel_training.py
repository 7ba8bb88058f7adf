"""Downsampling-kernel training with the network frozen (paper 000, section II.E.6)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy.ndimage import gaussian_filter1d

from mrsynth import cli
from mrsynth.checkpoint import ModelInfo, load_checkpoint, read_checkpoint, save_checkpoint
from mrsynth.data import Case
from mrsynth.errors import MRSynthError
from mrsynth.highlow import downsample_lr
from mrsynth.kernel_training import exact_kernel, fit_kernel, frozen_outputs
from mrsynth.models import load_model
from mrsynth.networks import HighResNet
from mrsynth.simulate import bundled_phantom, simulate
from mrsynth.synthesis import lr_kernels_for, synthesize


def test_fit_recovers_the_kernel_that_made_the_targets():
    torch.manual_seed(0)
    outputs = torch.rand(32, 1, 8, 8, 16)
    truth = torch.tensor([1 / 6, 1 / 3, 1 / 3, 1 / 6])
    targets = downsample_lr(outputs, truth)
    fitted = fit_kernel(outputs, targets, iterations=300, learning_rate=1e-2)
    assert np.abs(np.asarray(fitted) - truth.numpy()).sum() < 0.02


PROFILE = np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6])


def smooth_outputs_and_noisy_targets(noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs smooth along LR, as an sTSE_HR is (neighbouring slices nearly alike), and their thick
    slices through the slice profile plus Laplace noise, whose L1 fit is the profile."""
    rng = np.random.default_rng(0)
    outputs = torch.from_numpy(gaussian_filter1d(rng.random((32, 1, 8, 8, 32)), 1.5, axis=-1) + 0.5).float()
    targets = downsample_lr(outputs, torch.tensor(PROFILE, dtype=torch.float32))
    return outputs, targets + torch.from_numpy(rng.laplace(0.0, noise, targets.shape)).float()


def l1(outputs: torch.Tensor, targets: torch.Tensor, kernel) -> float:
    return float((downsample_lr(outputs.double(), torch.tensor(kernel).double()) - targets.double()).abs().mean())


def test_exact_fit_reaches_the_l1_minimum_where_the_papers_adam_stops_short():
    outputs, targets = smooth_outputs_and_noisy_targets(0.02)
    exact = exact_kernel(outputs, targets)
    assert np.abs(np.asarray(exact) - PROFILE).sum() < 0.03
    # a minimum: no step along a weight, or trading weight between neighbours, lowers the L1 loss
    best = l1(outputs, targets, exact)
    steps = [np.eye(4)[i] for i in range(4)] + [np.eye(4)[i] - np.eye(4)[i + 1] for i in range(3)]
    for step in steps:
        for sign in (1, -1):
            assert l1(outputs, targets, np.asarray(exact) + sign * 2e-3 * step) >= best
    # the paper's optimiser (Adam 1e-4, mini-batches of 16, 10000 steps from [1/2, 1/2, 0, 0]) stalls in
    # the valley where neighbouring slices trade weight: that is why the exact solver is the default
    adam = fit_kernel(outputs, targets, iterations=10000)
    assert np.abs(np.asarray(adam) - PROFILE).sum() > 3 * np.abs(np.asarray(exact) - PROFILE).sum()
    assert l1(outputs, targets, adam) > best


def test_exact_fit_is_exact_without_noise_and_refuses_mismatched_shapes():
    outputs, targets = smooth_outputs_and_noisy_targets(0.0)
    assert np.abs(np.asarray(exact_kernel(outputs, targets)) - PROFILE).max() < 1e-4
    with pytest.raises(MRSynthError, match="as many"):
        exact_kernel(outputs[:3], targets[:2])
    with pytest.raises(MRSynthError, match="4 LR slices per target slice"):
        exact_kernel(outputs[..., :16], targets)


@pytest.fixture(scope="module")
def case_and_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("kernel")
    piece = sitk.RegionOfInterest(bundled_phantom(), (48, 44, 40), (70, 60, 50))
    simulate(piece, "brainweb", root / "case", seed=3)
    torch.manual_seed(0)
    args = {"in_channels": 2, "out_channels": 1, "width": 2, "blocks_per_stage": 1}
    info = ModelInfo(
        name="tiny", architecture="HighResNet", arguments=args, inputs=["GE_aOP", "GE_aIP"], output="TSE_T1w",
        voxel_size=[1.0, 1.0, 1.0], patch=[24, 24, 16], stride=[12, 12, 4], lr_kernel=[1 / 6, 1 / 3, 1 / 3, 1 / 6],
    )  # fmt: skip
    return root / "case", save_checkpoint(root / "tiny.pt", HighResNet(**args).eval(), info)


def test_train_kernel_keeps_the_network_and_stores_the_kernel(case_and_model, tmp_path, capsys):
    case, model = case_and_model
    before = read_checkpoint(model)["state_dict"]
    out = tmp_path / "with-kernel.pt"
    argv = ["train-kernel", str(model), str(case), "--output", str(out), "--patches", "4", "--device", "cpu"]
    assert cli.main(argv) == 0  # the exact solver
    after = read_checkpoint(out)["state_dict"]
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    kernel = load_checkpoint(out).info.trained_lr_kernels["0"]
    # the L1 minimum on the same frozen patches (the command's default seed)
    loaded = load_checkpoint(model)
    cases = [Case.load(case, loaded.info.inputs, "TSE_thick", "head_mask", loaded.info.patch)]
    expected = exact_kernel(*frozen_outputs(loaded, cases, 0, 4, 0, torch.device("cpu")))
    assert np.allclose(kernel, expected, atol=1e-6) and kernel != [0.5, 0.5, 0.0, 0.0]
    assert "kernel at offset 0" in capsys.readouterr().out
    # a second offset adds to the first; then the shifted scheme and the trained kernel are usable
    again = ["train-kernel", str(out), str(case), "--output", str(out), "--offset", "1", "--patches", "4"]
    assert cli.main([*again, "--solver", "adam", "--iterations", "20", "--device", "cpu"]) == 0
    loaded = load_checkpoint(out)
    assert set(loaded.info.trained_lr_kernels) == {"0", "1"}
    shifted = lr_kernels_for(loaded.info, "shifted")
    assert set(shifted) == {0, 1, 2} and shifted[2][-1] == 0.0 and shifted[0][0] == 0.0
    images = [sitk.ReadImage(str(case / f"{name}.nii.gz")) for name in loaded.info.inputs]
    result = synthesize(loaded, images, lr_scheme="trained", device="cpu", flip_average=False)
    assert result.lr is not None


def test_schemes_without_their_trained_kernels_are_refused_before_any_work(case_and_model, tmp_path, capsys):
    case, model = case_and_model
    images = [str(case / f"{name}.nii.gz") for name in ("GE_aOP", "GE_aIP")]
    argv = ["synthesize", str(model), *images, "--output", str(tmp_path / "s.nii.gz"), "--lr-kernels", "four"]
    assert cli.main(argv) == 2
    assert "no trained kernel for LR offset(s) [0, 1, 2, -1]" in capsys.readouterr().err
    assert not (tmp_path / "s.nii.gz").exists()


def test_train_kernel_takes_a_registered_model_by_name(tmp_path, capsys):
    """The bundled model by its name, as `mrsynth models list` shows it: its weights kept, its kernel added."""
    case = tmp_path / "case"
    simulate(sitk.RegionOfInterest(bundled_phantom(), (64, 64, 64), (60, 60, 40)), "brainweb", case, seed=4)
    out = tmp_path / "bundled-k.pt"
    argv = ["train-kernel", "gre-to-tse-sim", str(case), "--output", str(out), "--patches", "2", "--device", "cpu"]
    assert cli.main(argv) == 0
    bundled, fitted = load_model("gre-to-tse-sim"), load_checkpoint(out)
    assert fitted.info.name == "gre-to-tse-sim" and set(fitted.info.trained_lr_kernels) == {"0"}
    original, kept = bundled.network.state_dict(), fitted.network.state_dict()
    assert all(torch.equal(original[k], kept[k]) for k in original)
    assert "kernel at offset 0" in capsys.readouterr().out
