"""The training protocol of paper 000: early stopping, the paired t-test, and the U-Net baselines."""

import numpy as np
import pytest
import torch
from scipy import stats

from mrsynth.early_stopping import EarlyStopping, stopping_epoch
from mrsynth.errors import MRSynthError
from mrsynth.networks import build_network, network_arguments
from mrsynth.significance import paired_t_test
from mrsynth.unet import UNet


def test_early_stopping_waits_80_epochs_after_the_smoothed_minimum():
    epochs = np.arange(600)
    curve = 1.0 + np.exp(-epochs / 40.0)  # falls, then flattens: improvements shrink below 0.1 %
    stop = stopping_epoch(curve)
    assert stop is not None
    smoothed = EarlyStopping(history=list(curve[: stop + 1])).smoothed()
    best, last = np.inf, 0
    for epoch, value in enumerate(smoothed):
        if value < best * 0.999:
            best, last = value, epoch
    assert stop - last == 80
    # an ever-falling curve (by more than 0.1 % per epoch) never stops
    assert stopping_epoch(np.exp(-epochs / 100.0)) is None


def test_early_stopping_ignores_noise_thanks_to_smoothing():
    rng = np.random.default_rng(0)
    epochs = np.arange(400)
    curve = 2.0 - epochs / 400.0 + rng.normal(0, 0.05, size=epochs.size)  # keeps falling, noisily
    assert stopping_epoch(curve) is None
    plateau = np.maximum(2.0 - epochs / 100.0, 1.0) + rng.normal(0, 0.05, size=epochs.size)  # flat from 100
    stop = stopping_epoch(plateau)
    assert stop is not None and stop >= 100 + 80  # never before 80 epochs of the plateau


def test_paired_t_test_matches_scipy_and_rejects_bad_input():
    rng = np.random.default_rng(1)
    a = rng.normal(0.9, 0.02, size=(5, 5))  # patients x repetitions
    b = a - 0.01 + rng.normal(0, 0.005, size=(5, 5))
    result = paired_t_test(a, b)
    expected = stats.ttest_rel(a.ravel(), b.ravel())
    assert result.pairs == 25 and result.p_value == pytest.approx(expected.pvalue)
    assert result.mean_difference == pytest.approx(0.01, abs=0.003) and result.significant()
    with pytest.raises(MRSynthError, match="same shape"):
        paired_t_test(a, b[:4])
    with pytest.raises(MRSynthError, match="NaN"):
        paired_t_test([1.0, np.nan], [1.0, 2.0])


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("padding,patch", [("reflect", (56, 56, 16)), ("zeros", (56, 56, 8))])
def test_unet_keeps_the_patch_size_and_has_the_paper_layers(batch_norm, padding, patch):
    net = UNet(in_channels=2, width=4, levels=4, batch_norm=batch_norm, padding=padding).eval()
    x = torch.randn(2, 2, *patch)
    assert net(x).shape == (2, 1, *patch)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d) and m.kernel_size == (3, 3, 3)]
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(convs) == 2 * 4 + 2 * 3 and all(c.padding_mode == padding for c in convs)
    assert len(norms) == (len(convs) if batch_norm else 0)
    assert sum(isinstance(m, torch.nn.ConvTranspose3d) for m in net.modules()) == 3


def test_unet_refuses_sizes_its_pooling_cannot_halve():
    net = UNet(in_channels=1, width=2, levels=4)
    with pytest.raises(MRSynthError, match="divisible by 8"):
        net(torch.randn(1, 1, 56, 56, 12))
    with pytest.raises(MRSynthError, match="reflection padding needs"):
        net(torch.randn(1, 1, 56, 56, 8))  # 1 voxel at the coarsest level: use zeros padding


def test_unet_is_built_from_a_training_config():
    model = {"architecture": "UNet", "width": 4, "levels": 3, "batch_norm": True, "padding": "zeros"}
    args = network_arguments(model | {"blocks_per_stage": 3}, 2, (1.0, 1.0, 1.0))
    net = build_network("UNet", args)
    assert isinstance(net, UNet) and net.size_multiple == 4
