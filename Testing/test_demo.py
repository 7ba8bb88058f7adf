"""The main job end to end: simulate the bundled phantom, synthesize, evaluate, write everything."""

from __future__ import annotations

import json

import pytest
import SimpleITK as sitk
import torch

from mrsynth.checkpoint import ModelInfo, save_checkpoint
from mrsynth.demo import demo
from mrsynth.models import registry
from mrsynth.networks import HighResNet
from mrsynth.volume_io import same_grid


def test_demo_writes_volumes_metrics_and_figure(tmp_path):
    torch.manual_seed(0)
    args = {"in_channels": 2, "out_channels": 1, "width": 4, "blocks_per_stage": 1}
    info = ModelInfo(
        name="tiny", architecture="HighResNet", arguments=args, inputs=["GE_aOP", "GE_aIP"], output="TSE_T1w",
        voxel_size=[1.0, 1.0, 1.0], patch=[56, 56, 32], stride=[18, 18, 4], lr_kernel=[1 / 6, 1 / 3, 1 / 3, 1 / 6],
    )
    net = HighResNet(**args)
    with torch.no_grad():  # a network that passes the aIP echo straight through: positive, untrained
        for parameter in net.parameters():
            parameter.zero_()
        for block in net.blocks[1:]:
            if isinstance(block.shortcut, torch.nn.Conv3d):
                block.shortcut.weight.fill_(1.0 / block.shortcut.in_channels)
        net.blocks[0].shortcut.weight[:, 1] = 1.0
        net.head.weight.fill_(1.0 / net.head.in_channels)
    model = save_checkpoint(tmp_path / "tiny.pt", net, info)
    out = tmp_path / "demo"
    out.mkdir()
    summary = demo(out, model=str(model), device="cpu")
    maps = ("relative_error.nii.gz", "dssim.nii.gz")
    written = ("sTSE_HR.nii.gz", "sTSE_LR.nii.gz", *maps, "metrics.json", "figure.png")
    for name in written:
        assert (out / name).is_file(), name
    assert (out / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    truth = sitk.ReadImage(str(out / "subject" / "TSE_HR.nii.gz"))
    assert same_grid(sitk.ReadImage(str(out / "sTSE_HR.nii.gz")), truth)
    assert same_grid(sitk.ReadImage(str(out / "relative_error.nii.gz")), truth)
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved["metrics"]) == {"synthesized", "thick TSE, cubic B-spline", "best linear map of GE"}
    for metrics in saved["metrics"].values():
        assert set(metrics) == {"body", "bone"}
        assert 0 < metrics["body"]["ssim"] <= 1
    # Passing the GE through must not beat the baselines: the comparison is not rigged.
    assert summary["ssim_beats_baselines"] is False


def test_bundled_default_model_is_registered_and_verified():
    entries = registry()
    if "gre-to-tse-sim" not in entries:
        pytest.fail("the bundled default model gre-to-tse-sim is not registered")
    entry = entries["gre-to-tse-sim"]
    assert entry.inputs == ["GE_aOP", "GE_aIP"]
    assert entry.path().stat().st_size == entry.size < 5_000_000
    assert "simulated" in entry.card_markdown()
