"""Super-resolution training: stride-16 patches, the forward model per patch, resume, task in the checkpoint."""

from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from mrsynth.checkpoint import load_checkpoint
from mrsynth.cli import main
from mrsynth.errors import MRSynthError
from mrsynth.sr_training import SRSampler, echo_ratio_loss, patch_corners, simulate_patch
from mrsynth.thick_slices import make_thick, to_thin


def test_a_patch_sees_what_the_whole_volume_would_give():
    volume = np.random.default_rng(0).random((1, 34, 34, 240)).astype(np.float32)
    for factor, phase, start in ((4, 0, 100), (3, 2, 130), (4, 1, 0), (2, 0, 208)):
        corner = np.array([1, 2, start])
        x, y = simulate_patch(volume, corner, (32, 32, 32), 2, factor, phase)
        p = phase if start >= phase else 0
        shifted = volume[..., p:]
        whole = to_thin(make_thick(shifted, 3, factor), 3, factor, shifted.shape[3])
        np.testing.assert_allclose(x, whole[:, 1:33, 2:34, start - p : start - p + 32], atol=1e-5)
        np.testing.assert_array_equal(y, volume[:, 1:33, 2:34, start : start + 32])


def test_the_sampler_turns_input_and_target_alike_with_the_slice_axis_first():
    rng = np.random.default_rng(0)
    volume = np.repeat(rng.random((1, 48, 48, 1)), 48, axis=3).astype(np.float32)  # constant along LR
    case = SimpleNamespace(name="c", mask=np.ones((48, 48, 48), bool), volumes=volume)
    config = {"patch": [32] * 3, "stride": [16] * 3, "slice_factor": 4, "slice_axes": ["LR"],
              "data": {"joint_contrasts": False}, "min_body_fraction": 0.1}  # fmt: skip
    x, y, axes = SRSampler([case], config, rng).draw(16)
    assert np.all(axes == 2)
    assert np.ptp(y, axis=2).max() == 0  # the slice axis (LR, along which nothing varies) comes first
    np.testing.assert_allclose(x, y, atol=1e-5)  # thick slices of a volume constant along them lose nothing


def test_patches_lie_on_the_stride_grid_and_hold_body():
    mask = np.zeros((64, 64, 64), dtype=bool)
    mask[20:40, 20:40, 20:40] = True
    corners = patch_corners(mask, (32, 32, 32), (16, 16, 16), 0.1)
    assert len(corners) and np.all(corners % 16 == 0)
    assert len(patch_corners(mask, (32, 32, 32), (16, 16, 16), 0.9)) == 0


def _case(folder, seed):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    array = np.zeros((40, 40, 40), dtype=np.float32)
    for _ in range(20):
        a, s = rng.integers(0, 30, 3), rng.integers(3, 10, 3)
        array[a[0] : a[0] + s[0], a[1] : a[1] + s[1], a[2] : a[2] + s[2]] = rng.random() + 0.5
    for name, values in (("TSE_HR", array), ("TSE_T2_HR", array[::-1].copy()), ("head_mask", (array > 0) * 1.0)):
        sitk.WriteImage(sitk.GetImageFromArray(values.astype(np.float32)), str(folder / f"{name}.nii.gz"))
    return folder


def test_train_superres_resumes_and_describes_its_task(tmp_path):
    cases = [str(_case(tmp_path / f"c{i}", i)) for i in range(2)]
    args = [
        "train", "--task", "superres", "--run-dir", str(tmp_path / "run"),
        "--set", f"data.train=[{cases[0]}]", "--set", f"data.val=[{cases[1]}]",
        "--set", "data.contrasts=[TSE_HR, TSE_T2_HR]", "--set", "model.depth=3", "--set", "model.width=4",
        "--set", "iterations=4", "--set", "batch_size=2", "--set", "epoch_patches=4", "--set", "val_patches=2",
        "--set", "checkpoint_every=2", "--set", "device=cpu",
    ]  # fmt: skip
    assert main(args) == 0
    assert main(["train", "--resume", str(tmp_path / "run"), "--set", "iterations=6"]) == 0
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(rows) == 7
    info = load_checkpoint(tmp_path / "run" / "model.pt").info
    assert info.task == "super-resolution" and info.architecture == "MRSR"
    assert info.slice_factor == 4 and info.slice_axis == "any" and info.patch == [32, 32, 32]
    assert info.arguments["in_channels"] == 1  # single-contrast model, trained on both contrasts


def test_resume_refuses_a_task_switch(tmp_path):
    assert main(["train", "--resume", str(tmp_path), "--task", "superres"]) == 2


@pytest.mark.parametrize("bad", ["slice_factor=1", "slice_axes=[XY]"])
def test_bad_settings_are_named(tmp_path, bad, capsys):
    case = _case(tmp_path / "c", 0)
    args = ["train", "--task", "superres", "--run-dir", str(tmp_path / "run"), "--set", f"data.train=[{case}]"]
    assert main([*args, "--set", bad, "--set", "device=cpu"]) == 2
    assert "slice" in capsys.readouterr().err


def test_echo_ratio_loss_is_zero_only_when_the_echo_ratio_is_right():
    torch.manual_seed(0)
    target = torch.rand(2, 2, 4, 4, 4) + 0.1
    assert float(echo_ratio_loss(target, target)) == 0.0
    # both echoes off by the same factor per voxel: the ratio, and so T2, is right
    scaled = target * (1 + 0.3 * torch.rand(2, 1, 4, 4, 4))
    assert float(echo_ratio_loss(scaled, target)) == pytest.approx(0.0, abs=1e-12)
    assert float(torch.nn.functional.mse_loss(scaled, target)) > 1e-3
    # one echo off: the ratio is wrong; the value is the mean of (o2 t1 - o1 t2)^2
    wrong = target.clone()
    wrong[:, 0] *= 1.1
    expected = torch.mean((0.1 * target[:, 0] * target[:, 1]) ** 2)
    assert float(echo_ratio_loss(wrong, target)) == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(MRSynthError, match="two-echo"):
        echo_ratio_loss(target[:, :1], target[:, :1])


def test_log_echo_ratio_loss_measures_the_log_ratio_error_over_tissue():
    torch.manual_seed(0)
    target = torch.rand(2, 2, 4, 4, 4) + 0.1
    assert float(echo_ratio_loss(target, target, "log")) == pytest.approx(0.0, abs=1e-12)
    scaled = target * (1 + 0.3 * torch.rand(2, 1, 4, 4, 4))
    assert float(echo_ratio_loss(scaled, target, "log")) == pytest.approx(0.0, abs=1e-10)
    # S1 10 % high everywhere: ln(o2/o1) - ln(t2/t1) = -ln 1.1 in every voxel, whatever the tissue's brightness
    wrong = target.clone()
    wrong[:, 0] *= 1.1
    assert float(echo_ratio_loss(wrong, target, "log")) == pytest.approx(np.log(1.1) ** 2, rel=1e-5)
    # voxels where a target echo is below the floor (air) do not count, however wrong the output is there
    target[:, 1, 0] = 0.0
    wrong = target.clone()
    wrong[:, 0, 0] = 5.0
    assert float(echo_ratio_loss(wrong, target, "log")) == pytest.approx(0.0, abs=1e-10)
    # an output echo at zero or below keeps the loss finite
    wrong[:, 0, 1] = -1.0
    value = float(echo_ratio_loss(wrong, target, "log"))
    assert np.isfinite(value) and value > 1
    with pytest.raises(MRSynthError, match="echo_ratio_form"):
        echo_ratio_loss(target, target, "ratio")


def test_echo_ratio_weight_needs_a_two_echo_model(tmp_path, capsys):
    case = _case(tmp_path / "c", 0)
    args = ["train", "--task", "superres", "--run-dir", str(tmp_path / "run"), "--set", f"data.train=[{case}]",
            "--set", "echo_ratio_weight=10", "--set", "device=cpu"]  # fmt: skip
    assert main(args) == 2
    assert "two-echo model" in capsys.readouterr().err
    two_echoes = ["--set", "data.contrasts=[TSE_HR, TSE_T2_HR]", "--set", "data.joint_contrasts=true",
                  "--set", "model.depth=3", "--set", "model.width=4", "--set", "iterations=2", "--set", "batch_size=2",
                  "--set", "epoch_patches=2"]  # fmt: skip
    assert main([*args, *two_echoes]) == 0
    info = load_checkpoint(tmp_path / "run" / "model.pt").info
    assert info.arguments["in_channels"] == 2 and info.training["config"]["echo_ratio_weight"] == 10
    log_run = ["--run-dir", str(tmp_path / "log"), "--set", "echo_ratio_form=log"]
    assert main([*args, *two_echoes, *log_run]) == 0
    assert load_checkpoint(tmp_path / "log" / "model.pt").info.training["config"]["echo_ratio_form"] == "log"
    assert main([*args, *two_echoes, "--run-dir", str(tmp_path / "bad"), "--set", "echo_ratio_form=ratio"]) == 2
    assert "echo_ratio_form" in capsys.readouterr().err
