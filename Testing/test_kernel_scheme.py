"""The High-to-low kernel schemes: the paper's Fig. 3 combinations and the ``aligned`` scheme.

The aligned scheme must reduce every patch, whatever its start, to exactly the thick slices it
covers; and the reason it exists must hold: a network blind to the slice phase, trained on the true
high-resolution image under Fig. 3, learns a low-pass along LR whose frozen kernel (section II.E.6)
is far from the slice profile, while under the aligned scheme it keeps the image and the kernel comes
back to the profile.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from mrsynth.data import Case, PatchSampler
from mrsynth.errors import MRSynthError
from mrsynth.highlow import AVERAGE_KERNEL, aligned_window, downsample_lr
from mrsynth.kernel_training import fit_kernel
from mrsynth.simulate import bundled_phantom, simulate
from mrsynth.volume_io import to_paper

PATCH = (16, 16, 16)


def _case(hr: np.ndarray, thick: np.ndarray) -> Case:
    mask = np.ones(hr.shape, bool)
    return Case(
        "synthetic", hr[None].astype(np.float32), thick.astype(np.float32), mask, (1.0, 1.0, 1.0), np.flatnonzero(mask)
    )


def _thick(hr: np.ndarray, pair_start: int) -> np.ndarray:
    """Thick slice j = the average kernel over slices 4j + p - 1 .. 4j + p + 2 (edge slices repeated)."""
    padded = np.concatenate([hr[..., :1], hr, hr[..., -1:], hr[..., -1:]], axis=-1)  # index i + 1 = slice i
    n = hr.shape[-1] // 4
    return np.stack(
        [sum(w * padded[..., 4 * j + pair_start + s] for s, w in enumerate(AVERAGE_KERNEL)) for j in range(n)], -1
    )


def test_long_kernel_equals_the_four_tap_kernel_on_the_cropped_patch():
    hr = torch.randn(2, 1, 3, 3, 24)
    first, kernel = aligned_window(hr_start=2, pair_start=1)
    assert first == 1 and len(kernel) == 8
    phase = 4 * first + 1 - 1 - 2  # the kernel's first tap, in the patch: slice 4j + p - 1
    assert kernel[phase : phase + 4] == pytest.approx(AVERAGE_KERNEL) and sum(kernel) == pytest.approx(1)
    expected = downsample_lr(hr[..., phase : phase + 20], AVERAGE_KERNEL)
    assert torch.allclose(downsample_lr(hr, kernel), expected, atol=1e-6)
    with pytest.raises(ValueError, match="multiples of 4"):
        downsample_lr(hr, [0.5] * 6)


@pytest.mark.parametrize("pair_start", [0, 1, 2])
def test_aligned_patches_reduce_to_their_thick_slices_at_every_phase(pair_start):
    rng = np.random.default_rng(pair_start)
    hr = rng.normal(size=(20, 20, 64))
    sampler = PatchSampler([_case(hr, _thick(hr, pair_start))], PATCH, pair_start, rng, kernel_scheme="aligned")
    phases = set()
    for _ in range(40):
        x, y, k = sampler.draw(1)
        assert y.shape == (1, 1, 16, 16, PATCH[2] // 4 - 1) and k.shape == (1, 8)
        np.testing.assert_allclose(downsample_lr(torch.from_numpy(x[:, :1]), k[0]).numpy(), y, atol=1e-5)
        phases.add(int(np.flatnonzero(k[0])[0]))
    assert phases == {0, 1, 2, 3}


def test_aligned_scheme_matches_the_simulators_thick_slices():
    """Noise-free simulation: every aligned patch of the true HR TSE reduces to the simulated thick TSE."""
    sim = simulate(sitk.RegionOfInterest(bundled_phantom(), (40, 40, 48), (70, 60, 56)), "brainweb", snr=math.inf)
    hr, thick = to_paper(sim["TSE_HR"]), to_paper(sim["TSE_thick"])
    sampler = PatchSampler([_case(hr, thick)], PATCH, 1, np.random.default_rng(0), kernel_scheme="aligned")
    for _ in range(20):
        x, y, k = sampler.draw(1)
        np.testing.assert_allclose(downsample_lr(torch.from_numpy(x), k[0]).numpy(), y, atol=1e-4 * thick.max())


def test_an_unknown_scheme_is_refused():
    hr = np.zeros((20, 20, 32))
    with pytest.raises(MRSynthError, match="kernel_scheme must be fig3 or aligned"):
        PatchSampler([_case(hr, hr[..., ::4])], PATCH, 1, np.random.default_rng(0), kernel_scheme="fig4")


def _lr_filter(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """A phase-blind linear network: one filter along LR, the same at every voxel."""
    flat = x.reshape(-1, 1, x.shape[-1])
    half = taps.numel() // 2
    out = torch.nn.functional.conv1d(torch.nn.functional.pad(flat, (half, half), mode="reflect"), taps.view(1, 1, -1))
    return out.reshape(x.shape)


def _trained_filter(case: Case, scheme: str) -> torch.Tensor:
    """The filter trained from the identity under ``scheme`` (L2, whose optimum mrsynth.highlow derives)."""
    taps = torch.zeros(7)
    taps.data[3] = 1.0
    taps.requires_grad_(True)
    optimizer = torch.optim.Adam([taps], lr=3e-2)
    sampler = PatchSampler([case], (24, 24, 32), 1, np.random.default_rng(0), kernel_scheme=scheme)
    for _ in range(400):
        x, y, k = (torch.from_numpy(a) for a in sampler.draw(8))
        loss = torch.nn.functional.mse_loss(downsample_lr(_lr_filter(x, taps), k), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return taps.detach()


def test_fig3_teaches_a_phase_blind_network_a_low_pass_and_aligned_does_not():
    sim = simulate(sitk.RegionOfInterest(bundled_phantom(), (72, 72, 96), (50, 40, 40)), "brainweb", snr=math.inf)
    hr, thick = to_paper(sim["TSE_HR"]), to_paper(sim["TSE_thick"])
    case = _case(hr / thick.max(), thick / thick.max())
    frozen = PatchSampler([case], (24, 24, 32), 1, np.random.default_rng(1), random_offsets=False)
    patches = [frozen.draw(16) for _ in range(2)]
    period4 = torch.exp(-1j * (math.pi / 2) * torch.arange(-3, 4))  # the response at the 4-slice period
    results = {}
    for scheme in ("fig3", "aligned"):
        taps = _trained_filter(case, scheme)
        outputs = torch.cat([_lr_filter(torch.from_numpy(x), taps) for x, _, _ in patches])
        targets = torch.cat([torch.from_numpy(y) for _, y, _ in patches])
        kernel = fit_kernel(outputs, targets, iterations=3000, learning_rate=3e-3)
        results[scheme] = (abs(complex((taps * period4).sum())), np.abs(np.subtract(kernel, AVERAGE_KERNEL)).sum())
    # Fig. 3 damps the 4-slice period; aligned keeps the identity (response 1)
    assert results["fig3"][0] < 0.7 < 0.95 < results["aligned"][0]
    assert results["aligned"][1] < 0.05 < 0.15 < results["fig3"][1]
