"""Downsampling-kernel training with the network frozen (paper 000, section II.E.6)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from mrsynth import cli
from mrsynth.checkpoint import ModelInfo, load_checkpoint, read_checkpoint, save_checkpoint
from mrsynth.highlow import downsample_lr
from mrsynth.kernel_training import fit_kernel
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
    assert cli.main([*argv, "--iterations", "50", "--learning-rate", "1e-2"]) == 0
    after = read_checkpoint(out)["state_dict"]
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    kernel = load_checkpoint(out).info.trained_lr_kernels["0"]
    assert len(kernel) == 4 and kernel != [0.5, 0.5, 0.0, 0.0]  # moved from the paper's starting point
    assert "kernel at offset 0" in capsys.readouterr().out
    # a second offset adds to the first; then the shifted scheme and the trained kernel are usable
    again = ["train-kernel", str(out), str(case), "--output", str(out), "--offset", "1", "--patches", "4"]
    assert cli.main([*again, "--iterations", "20", "--device", "cpu"]) == 0
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
