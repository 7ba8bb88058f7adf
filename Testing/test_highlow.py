"""The Fig. 3 kernel/offset scheme of paper 000 and the 1x1x4 strided downsampling."""

import numpy as np
import pytest
import torch

from mrsynth.highlow import (
    SLICE_FACTOR,
    downsample_lr,
    estimate_pair_start,
    inference_kernel,
    offset_kernel_combinations,
)


@pytest.mark.parametrize("pair_start", [0, 1, 2])
def test_network_side_every_tap_weighted_a_quarter_and_used_half_the_time(pair_start):
    kernels = np.array([k for _, k in offset_kernel_combinations(pair_start)])
    np.testing.assert_allclose(kernels.mean(axis=0), [0.25] * 4)
    np.testing.assert_allclose((kernels > 0).mean(axis=0), [0.5] * 4)
    np.testing.assert_allclose(kernels.sum(axis=1), 1.0)


@pytest.mark.parametrize("pair_start", [0, 1, 2])
def test_image_side_pair_weighted_a_third_neighbours_a_sixth(pair_start):
    # Weight each combination puts on image slice 4j + r, averaged over combinations.
    weights: dict[int, float] = {}
    combos = offset_kernel_combinations(pair_start)
    for offset, kernel in combos:
        for tap, w in enumerate(kernel):
            weights[offset + tap] = weights.get(offset + tap, 0.0) + w / len(combos)
    expected = {pair_start - 1: 1 / 6, pair_start: 1 / 3, pair_start + 1: 1 / 3, pair_start + 2: 1 / 6}
    assert {r: pytest.approx(w) for r, w in weights.items() if w > 0} == expected


def test_paper_offsets_for_pair_at_zero():
    # The paper: "[1/6, 1/3, 1/3, 1/6] ... only works for an offset of -1"; offset 0 uses [1/2, 1/2, 0, 0].
    combos = offset_kernel_combinations(0)
    assert {o for o, _ in combos} == {0, -1, -2}
    assert (0, (0.5, 0.5, 0.0, 0.0)) in combos
    assert inference_kernel(0) == (0.5, 0.5, 0.0, 0.0)
    assert inference_kernel(1) == pytest.approx((1 / 6, 1 / 3, 1 / 3, 1 / 6))


def test_downsample_matches_strided_convolution():
    hr = torch.randn(3, 1, 5, 6, 16)
    kernel = torch.tensor([0.1, 0.4, 0.3, 0.2])
    expected = torch.nn.functional.conv3d(hr, kernel.view(1, 1, 1, 1, 4), stride=(1, 1, 4))
    torch.testing.assert_close(downsample_lr(hr, kernel), expected)
    per_item = torch.stack([kernel, kernel.flip(0), torch.full((4,), 0.25)])
    out = downsample_lr(hr, per_item)
    for b in range(3):
        ref = torch.nn.functional.conv3d(hr[b : b + 1], per_item[b].view(1, 1, 1, 1, 4), stride=(1, 1, 4))
        torch.testing.assert_close(out[b : b + 1], ref)


def test_downsample_rejects_length_not_multiple_of_factor():
    with pytest.raises(ValueError):
        downsample_lr(torch.zeros(1, 1, 2, 2, 10), [0.25] * 4)


@pytest.mark.parametrize("true_pair", [0, 1, 2])
def test_pair_start_found_from_data(true_pair):
    rng = np.random.default_rng(0)
    ge = rng.normal(size=(20, 20, 64)).astype(np.float32)
    ge = ge + np.roll(ge, 1, axis=-1) * 0.3  # some through-plane correlation
    profile = np.zeros(SLICE_FACTOR)
    profile[true_pair] = profile[true_pair + 1] = 0.5
    thick = (ge.reshape(20, 20, -1, SLICE_FACTOR) * profile).sum(-1) + rng.normal(scale=0.05, size=(20, 20, 16))
    assert estimate_pair_start(ge, thick) == true_pair
