"""The check that a scan reaches the network at the intensity level the model was trained on."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch import nn

from mrsynth.checkpoint import LoadedModel, ModelInfo
from mrsynth.input_levels import TOLERANCE, level_warning, p99_levels
from mrsynth.synthesis import synthesize


def _head(shape=(40, 40, 40)) -> np.ndarray:
    """A bright rim (scalp and fat) around a darker brain, in air: the rim sets the 99th percentile."""
    z, y, x = np.indices(shape) - np.array(shape)[:, None, None, None] / 2
    r = np.sqrt(z**2 + y**2 + x**2)
    array = np.where(r < 15, 50.0, 0.0) + np.where((r >= 15) & (r < 18), 100.0, 0.0)
    return array + np.random.default_rng(0).normal(0, 1, shape)


def test_levels_move_when_the_scan_leaves_out_the_bright_tissue():
    head = _head()
    whole = p99_levels([head, 2 * head])
    inner = head[12:28, 12:28, 12:28]  # inside the brain only: no rim to set the percentile
    crop = p99_levels([inner, 2 * inner])
    assert whole == pytest.approx([whole[0]] * 2, rel=1e-6)  # a gain does not change a level
    assert crop[0] > 1.5 * whole[0]


def _info(levels) -> ModelInfo:
    normalisation = {"method": "p99", "description": "test", "input_levels": levels} if levels else {"method": "p99"}
    return ModelInfo(
        name="tiny",
        architecture="HighResNet",
        arguments={},
        inputs=["GE_aOP", "GE_aIP"],
        output="TSE",
        voxel_size=[1.0, 1.0, 1.0],
        patch=[16, 16, 16],
        stride=[8, 8, 8],
        approach="low-to-low",
        normalisation=normalisation,
    )


def test_warning_names_each_input_off_by_more_than_the_tolerance():
    info = _info([0.5, 0.5])
    assert level_warning(info, [0.5 * (1 + 0.9 * TOLERANCE), 0.5]) is None
    message = level_warning(info, [0.8, 0.52])
    assert "GE_aOP 0.80 (training 0.50)" in message and "GE_aIP" not in message
    assert "--input-scales" in message
    assert level_warning(_info(None), [5.0, 5.0]) is None  # models trained before levels were recorded


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1].clone()

    def receptive_field(self) -> tuple[int, int, int]:
        return (1, 1, 1)


def _images(array: np.ndarray) -> list[sitk.Image]:
    return [sitk.GetImageFromArray(array.astype(np.float32)) for _ in range(2)]


def test_synthesize_warns_for_a_crop_and_not_for_the_whole_head_or_given_scales():
    head = _head()
    model = LoadedModel(network=Identity(), info=_info(p99_levels([head, head])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        whole = synthesize(model, _images(head), device="cpu", flip_average=False)
    inner = _images(head[12:28, 12:28, 12:28])  # inside the brain only
    with pytest.warns(UserWarning, match="far from what model tiny was trained on"):
        synthesize(model, inner, device="cpu", flip_average=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        synthesize(model, inner, device="cpu", flip_average=False, input_scales=whole.scales)


def test_cli_prints_the_levels_and_warns(tmp_path, capsys):
    from mrsynth import cli
    from mrsynth.checkpoint import save_checkpoint
    from mrsynth.networks import HighResNet

    head = _head()
    info = _info(p99_levels([head, head]))
    info.architecture, info.arguments = "HighResNet", {"in_channels": 2, "width": 2, "blocks_per_stage": 1}
    model = save_checkpoint(tmp_path / "tiny.pt", HighResNet(in_channels=2, width=2, blocks_per_stage=1), info)
    paths = []
    for i, image in enumerate(_images(head[12:28, 12:28, 12:28])):
        paths.append(str(tmp_path / f"in{i}.nii.gz"))
        sitk.WriteImage(image, paths[-1])
    with pytest.warns(UserWarning, match="far from what model tiny was trained on"):
        assert cli.main(["synthesize", str(model), *paths, "--output", str(tmp_path / "out.nii.gz")]) == 0
    captured = capsys.readouterr()
    assert "input levels [0.9" in captured.out and "(training [0.5" in captured.out
