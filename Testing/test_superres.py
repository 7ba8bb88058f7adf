"""Super-resolution (paper 003): MRSR, the thick-slice forward model and the interpolation baselines."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from mrsynth import sr_baselines, thick_slices
from mrsynth.errors import MRSynthError
from mrsynth.grids import thick_grid
from mrsynth.inference import InferenceOptions, infer
from mrsynth.metrics import rmse
from mrsynth.networks import MRSR, build_network


def test_mrsr_structure_matches_the_paper():
    net = MRSR()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    assert len(convs) == 20 and all(c.kernel_size == (3, 3, 3) for c in convs)
    assert {c.out_channels for c in convs[:-1]} == {64}
    assert sum(isinstance(m, torch.nn.ReLU) for m in net.modules()) == 19
    assert net.receptive_field() == (41, 41, 41)


def test_untrained_zero_residual_network_returns_its_interpolated_input():
    torch.manual_seed(0)
    net = build_network("MRSR", {"in_channels": 2, "out_channels": 2, "depth": 4, "width": 8}).eval()
    x = torch.rand(1, 2, 10, 9, 8)
    assert torch.equal(net(x), x)
    with torch.no_grad():
        net.head.weight.normal_()
    assert not torch.allclose(net(x), x)  # the residual path is live once trained


def test_mrsr_runs_in_the_full_context_engine_like_one_pass():
    torch.manual_seed(0)
    net = MRSR(depth=3, width=4).eval()
    with torch.no_grad():
        net.head.weight.normal_(std=0.1)
    x = np.random.default_rng(0).random((1, 20, 18, 16)).astype(np.float32)
    options = InferenceOptions(tile=(8, 8, 8))
    out = infer(x, net, options, patch=[32, 32, 32], stride=[16, 16, 16]).hr
    with torch.no_grad():
        whole = net(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(out, whole, atol=1e-5)


def test_mrsr_refuses_more_outputs_than_inputs():
    with pytest.raises(MRSynthError, match="out_channels"):
        MRSR(in_channels=1, out_channels=2)


def test_ratio_residual_keeps_the_interpolated_echo_ratio_when_later_echoes_add_nothing():
    torch.manual_seed(0)
    net = MRSR(in_channels=2, out_channels=2, depth=3, width=4, ratio_residual=True).double().eval()
    x = torch.rand(1, 2, 8, 7, 6, dtype=torch.float64) + torch.tensor([0.5, 0.2], dtype=torch.float64).reshape(
        1, 2, 1, 1, 1
    )  # ratios 0.4-2.4: none is clipped
    with torch.no_grad():
        assert torch.equal(net(x), x)  # zero residuals: still the interpolated input
        net.head.weight[0].normal_(std=0.1)  # the first echo's residual is live, the second's own is zero
        out = net(x)
    assert not torch.allclose(out[:, 0], x[:, 0])
    torch.testing.assert_close(out[:, 1] / out[:, 0], x[:, 1] / x[:, 0])
    with torch.no_grad():
        net.head.weight[1].normal_(std=0.1)  # the second echo's own residual changes the ratio
        assert not torch.allclose(net(x)[:, 1] / net(x)[:, 0], x[:, 1] / x[:, 0])


def test_ratio_residual_ignores_a_dark_first_echo_and_clips_the_ratio():
    net = MRSR(in_channels=2, out_channels=2, depth=2, width=2, ratio_residual=True).eval()
    with torch.no_grad():
        net.head.bias[0] = 0.1  # a constant residual of 0.1 on the first echo, none of its own on the second
        x = torch.tensor([0.01, 0.1, 0.3]).reshape(1, 1, 3, 1, 1).repeat(1, 2, 1, 1, 1)
        x[:, 1] = torch.tensor([0.5, 1.0, 0.6]).reshape(1, 3, 1, 1)
        carried = (net(x) - x)[0, 1, :, 0, 0]
    # below the floor nothing is carried; a ratio of 10 is clipped to RATIO_MAX; 0.6 / 0.3 = 2 passes
    torch.testing.assert_close(carried, torch.tensor([0.0, 0.1 * MRSR.RATIO_MAX, 0.2]))


def test_ratio_residual_needs_two_outputs():
    with pytest.raises(MRSynthError, match="two or more"):
        MRSR(in_channels=2, out_channels=1, ratio_residual=True)


@pytest.mark.parametrize("factor", thick_slices.FACTORS)
def test_antialias_filter_frequency_response(factor):
    taps = thick_slices.antialias_filter(factor)
    assert len(taps) - 1 in (47, 48) and (len(taps) % 2 == 1) == (factor % 2 == 1)
    np.testing.assert_allclose(taps, taps[::-1])  # linear phase
    freq, gain = thick_slices.frequency_response(factor, 4096)
    cutoff = 1.0 / factor
    assert gain[0] == pytest.approx(1.0, abs=1e-9)
    assert np.all(np.abs(gain[freq <= cutoff / 2] - 1) < 0.01)
    assert gain[freq >= 1.5 * cutoff].max() < 0.01  # below -40 dB: what would alias is removed
    assert gain[np.argmin(np.abs(freq - cutoff))] == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("factor", thick_slices.FACTORS)
def test_thick_slices_are_centred_where_thick_grid_puts_them(factor):
    n = 40 * factor
    ramp = np.broadcast_to(np.arange(n, dtype=np.float32), (3, 4, n))
    thick = thick_slices.make_thick(ramp, 2, factor)
    assert thick.shape == (3, 4, 40)
    centres = factor * np.arange(40) + (factor - 1) / 2
    np.testing.assert_allclose(thick[0, 0, 13:-13], centres[13:-13], atol=1e-3)  # beyond the filter's reach
    np.testing.assert_allclose(thick_slices.make_thick(np.ones((2, 3, 7)), 2, factor), 1.0, atol=1e-5)


def test_thick_slices_along_any_axis_and_thin_grid_inverts_thick_grid():
    volume = np.random.default_rng(1).random((16, 12, 8)).astype(np.float32)
    for axis in range(3):
        moved = np.moveaxis(thick_slices.make_thick(np.moveaxis(volume, axis, 2), 2, 4), 2, axis)
        np.testing.assert_allclose(thick_slices.make_thick(volume, axis, 4), moved, atol=1e-6)
    image = sitk.Image([8, 12, 16], sitk.sitkFloat32)
    image.SetSpacing((1.0, 0.9, 1.1))
    image.SetOrigin((3.0, -2.0, 5.0))
    for axis in range(3):
        thin = thick_slices.thin_grid(thick_grid(image, 4, axis), 4, axis)
        assert thin.GetSize() == image.GetSize()
        np.testing.assert_allclose(thin.GetOrigin(), image.GetOrigin(), atol=1e-6)
        np.testing.assert_allclose(thin.GetSpacing(), image.GetSpacing(), atol=1e-6)


def test_slice_axis_is_read_from_the_geometry():
    image = sitk.Image([16, 16, 8], sitk.sitkFloat32)
    image.SetSpacing((0.5, 0.5, 5.0))  # axial slices: thick along SI
    assert thick_slices.slice_axis_of(image) == 0
    image.SetDirection((0, 0, 1, 1, 0, 0, 0, 1, 0))  # the k axis now runs along LR
    assert thick_slices.slice_axis_of(image) == 2
    image.SetSpacing((1.0, 1.0, 1.0))
    with pytest.raises(MRSynthError, match="slice axis"):
        thick_slices.slice_axis_of(image)


def test_tricubic_reproduces_a_cubic_polynomial_inside_the_volume():
    x = np.arange(40, dtype=np.float64)
    thick = (0.001 * x**3 - 0.03 * x**2 + x)[None, None]
    position = thick_slices.thin_positions(160, 4)
    out = sr_baselines.tricubic(thick, 2, 4)[0, 0]
    expected = 0.001 * position**3 - 0.03 * position**2 + position
    np.testing.assert_allclose(out[40:-40], expected[40:-40], atol=1e-4)


def test_fourier_interpolation_is_exact_for_band_limited_slices():
    n, factor = 12, 3
    thick = np.cos(2 * np.pi * 2 * np.arange(n) / n + 0.3)[None, None]
    out = sr_baselines.fourier(thick, 2, factor)[0, 0]
    position = thick_slices.thin_positions(n * factor, factor)
    np.testing.assert_allclose(out, np.cos(2 * np.pi * 2 * position / n + 0.3), atol=1e-5)


def test_scsr_learns_the_residuals_of_a_pattern_it_has_seen():
    # Thick slices lose what lies above their Nyquist frequency; no linear method brings it back, but a
    # dictionary that has seen the pattern does (a known case where tricubic cannot be right).
    profile = np.tile([0, 0, 1, 1, 1, 0.3, 0.3, 0.3, 0.3, 0.8, 0.8, 0], 2)
    truth = np.broadcast_to(profile, (24, 24, 24)).astype(np.float32).copy()
    mask = np.ones(truth.shape, dtype=bool)
    model = sr_baselines.ScSR(factor=4, axis=2, atoms=16, samples=1000, nonzero=1, epochs=3).fit([truth], [mask])
    low = sr_baselines.tricubic(thick_slices.make_thick(truth, 2, 4), 2, 4, 24)
    out = model.predict(low, mask, stride=2)
    inner = (slice(None), slice(None), slice(6, -6))
    assert out.shape == truth.shape
    assert rmse(out[inner], truth[inner]) < 0.8 * rmse(low[inner], truth[inner])
    with pytest.raises(MRSynthError, match="fit first"):
        sr_baselines.ScSR(factor=4, axis=2).predict(low)


def _phantom_slab() -> np.ndarray:
    """A 48x48x64 (SI AP LR) crop of the bundled BrainWeb phantom, tissue labels scaled to intensities."""
    from mrsynth.simulate import bundled_phantom

    labels = sitk.GetArrayFromImage(bundled_phantom()).astype(np.float32)
    centre = np.array(labels.shape) // 2
    return labels[centre[0] - 24 : centre[0] + 24, centre[1] - 24 : centre[1] + 24, centre[2] - 32 : centre[2] + 32] / 9


def test_back_projection_leaves_a_consistent_volume_alone_and_removes_a_smooth_drift():
    truth = _phantom_slab()
    thick = thick_slices.make_thick(truth, 2, 4)
    np.testing.assert_allclose(thick_slices.back_project(truth, thick, 2, 4, 3), truth, atol=1e-5)
    drift = 0.05 * np.cos(np.linspace(0, np.pi, truth.shape[2]))  # slow along the slice axis, as a network's bias
    start = truth + drift[None, None]
    inconsistency = [np.abs(thick_slices.make_thick(start, 2, 4) - thick).mean()]
    for iterations in (1, 2, 3):
        out = thick_slices.back_project(start, thick, 2, 4, iterations)
        inconsistency.append(np.abs(thick_slices.make_thick(out, 2, 4) - thick).mean())
    assert all(b < a for a, b in zip(inconsistency, inconsistency[1:]))
    assert rmse(out, truth, np.ones(truth.shape, bool)) < 0.1 * rmse(start, truth, np.ones(truth.shape, bool))


def test_back_projection_keeps_detail_the_thick_slices_cannot_see():
    truth = _phantom_slab()
    thick = thick_slices.make_thick(truth, 1, 4)
    detail = 0.1 * (-1.0) ** np.arange(truth.shape[1])  # the thin grid's Nyquist frequency: in the filter's stop band
    out = thick_slices.back_project(truth + detail[None, :, None], thick, 1, 4, 2)
    np.testing.assert_allclose(out - truth, np.broadcast_to(detail[None, :, None], truth.shape), atol=0.01)


def test_back_projection_refuses_bad_arguments():
    truth = _phantom_slab()
    thick = thick_slices.make_thick(truth, 0, 4)
    with pytest.raises(MRSynthError, match="negative"):
        thick_slices.back_project(truth, thick, 0, 4, -1)
    with pytest.raises(MRSynthError, match="thin grid"):
        thick_slices.back_project(truth[:40], thick, 0, 4, 1)
