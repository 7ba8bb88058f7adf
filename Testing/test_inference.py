"""Sliding-window and full-context inference (paper 000, section II.F.1)."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from mrsynth.errors import Cancelled, MRSynthError
from mrsynth.highlow import downsample_lr, lr_configurations, mirrored_configurations, shift_kernel
from mrsynth.inference import InferenceOptions, full_context, resolve_device, sliding_window
from mrsynth.networks import HighResNet
from mrsynth.tiling import (
    boxes_touching,
    check_stride,
    gaussian_weights,
    plan_tiles,
    tile_budget,
    window_starts,
)

KERNEL = (1 / 6, 1 / 3, 1 / 3, 1 / 6)
PATCH = (24, 24, 16)


class FirstChannel(nn.Module):
    """Returns its first input channel: fused HR must reproduce the input, LR its downsampling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1].clone()


class WindowDependent(nn.Module):
    """First channel plus the window's mean and a ramp: each window predicts something different."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(0, 1, x.shape[-1], dtype=x.dtype)
        return x[:, :1] + x.mean(dim=(1, 2, 3, 4), keepdim=True) + ramp


def _volume(shape, channels=2, seed=0):
    return np.random.default_rng(seed).normal(size=(channels, *shape)).astype(np.float32)


def _random_highresnet(in_channels=2, seed=0):
    torch.manual_seed(seed)
    net = HighResNet(in_channels=in_channels, width=2, blocks_per_stage=1)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm3d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    return net.eval()


@pytest.mark.parametrize("length", [1, 7, 16, 17, 31, 40, 64])
@pytest.mark.parametrize("patch,stride", [(4, 1), (8, 3), (8, 8), (16, 4), (16, 8), (16, 16)])
def test_window_starts_cover_the_axis(length, patch, stride):
    if patch > length:
        with pytest.raises(ValueError):
            window_starts(length, patch, stride)
        return
    starts = window_starts(length, patch, stride)
    assert starts[0] == 0 and starts[-1] + patch == length
    assert all(0 < b - a <= stride for a, b in zip(starts, starts[1:], strict=False))
    covered = np.zeros(length, dtype=bool)
    for s in starts:
        covered[s : s + patch] = True
    assert covered.all()


@pytest.mark.parametrize("stride", [1, 2, 3, 4, 6, 8])
def test_windows_on_thick_slice_boundaries_cover_the_axis(stride):
    starts = window_starts(64, 16, stride)
    chosen = [s for s in starts if s % 4 == 0]
    assert chosen[0] == 0 and chosen[-1] == 48
    assert max(b - a for a, b in zip(chosen, chosen[1:], strict=False)) <= 16
    check_stride((8, 8, stride), (16, 16, 16), 4)  # lcm(stride, 4) <= 16: no gap
    with pytest.raises(MRSynthError, match="come every 60 voxels"):
        check_stride((8, 8, 15), (16, 16, 16), 4)  # starts 0, 15, 30, 45, 48: aligned 0, 48


def test_window_starts_reject_gaps():
    with pytest.raises(ValueError):
        window_starts(40, 8, 9)


def test_gaussian_sigma_is_a_sixth_of_the_patch():
    patch = (13, 8, 25)
    w = gaussian_weights(patch)
    assert w.shape == patch and w.dtype == np.float32 and (w > 0).all()
    profiles = [np.exp(-0.5 * ((np.arange(p) - (p - 1) / 2) / (p / 6)) ** 2) for p in patch]
    expected = np.einsum("i,j,k->ijk", *profiles)
    np.testing.assert_allclose(w / w.max(), expected / expected.max(), rtol=1e-5)
    # one sigma (13 / 6 voxels) from the centre the weight has dropped to exp(-1/2)
    profile = gaussian_weights((13, 1, 1))[:, 0, 0].astype(float)
    assert np.interp(6 + 13 / 6, np.arange(13), profile) == pytest.approx(np.exp(-0.5), rel=0.02)


@pytest.mark.parametrize("stride", [(18, 18, 4), (18, 18, 8)])
@pytest.mark.parametrize("shape", [(41, 37, 28), (41, 19, 12)])
def test_sliding_identity_reproduces_input_and_its_downsampling(stride, shape):
    x = _volume(shape)
    hr, lr, _ = sliding_window(
        x, FirstChannel(), PATCH, stride, lr_kernel=KERNEL, options=InferenceOptions(batch_size=3)
    )
    assert hr.shape == (1, *shape) and lr.shape == (1, shape[0], shape[1], shape[2] // 4)
    np.testing.assert_allclose(hr[0], x[0], atol=1e-5)
    np.testing.assert_allclose(lr, downsample_lr(torch.from_numpy(x[:1]), KERNEL).numpy(), atol=1e-5)


def _brute_force(x, network, patch, stride, kernel, factor=4):
    """Independent Gaussian-weighted fusion, one window at a time, straight from the paper's text.

    sTSE_LR takes the windows that start on a thick-slice boundary (LR start a multiple of ``factor``),
    or, when ``kernel`` maps LR offsets to kernels, windows starting at factor * t + o for each o.
    """
    configurations = kernel if isinstance(kernel, dict) else {0: kernel}
    shape = x.shape[1:]
    starts = []
    for n, p, s in zip(shape, patch, stride, strict=True):
        axis = list(range(0, n - p + 1, s))
        if axis[-1] != n - p:
            axis.append(n - p)
        starts.append(axis)
    profiles = [np.exp(-0.5 * ((np.arange(p) - (p - 1) / 2) / (p / 6)) ** 2) for p in patch]
    w = profiles[0][:, None, None] * profiles[1][None, :, None] * profiles[2][None, None, :]
    w_lr = w.reshape(patch[0], patch[1], patch[2] // factor, factor).mean(-1)
    hr_num, hr_den = np.zeros(shape), np.zeros(shape)
    lr_shape = (shape[0], shape[1], shape[2] // factor)
    lr_num, lr_den = np.zeros(lr_shape), np.zeros(lr_shape)
    for a, b, c in itertools.product(*starts):
        window = x[None, :, a : a + patch[0], b : b + patch[1], c : c + patch[2]]
        y = network(torch.from_numpy(np.ascontiguousarray(window)))[0, 0].numpy().astype(np.float64)
        hr_num[a : a + patch[0], b : b + patch[1], c : c + patch[2]] += w * y
        hr_den[a : a + patch[0], b : b + patch[1], c : c + patch[2]] += w
        offsets = [o for o in configurations if (c - o) % factor == 0]
        if not offsets:
            continue
        k = np.asarray(configurations[offsets[0]])
        thick = (y.reshape(patch[0], patch[1], -1, factor) * k).sum(-1)
        t = (c - offsets[0]) // factor
        lr_num[a : a + patch[0], b : b + patch[1], t : t + patch[2] // factor] += w_lr * thick
        lr_den[a : a + patch[0], b : b + patch[1], t : t + patch[2] // factor] += w_lr
    return hr_num / hr_den, lr_num / lr_den


@pytest.mark.parametrize("stride", [(18, 18, 4), (10, 18, 8), (18, 18, 1), (18, 18, 6)])
def test_sliding_fusion_matches_brute_force(stride):
    x = _volume((41, 37, 28), seed=1)
    net = WindowDependent()
    hr, lr, report = sliding_window(x, net, PATCH, stride, lr_kernel=KERNEL, options=InferenceOptions(batch_size=4))
    hr_ref, lr_ref = _brute_force(x, net, PATCH, stride, KERNEL)
    np.testing.assert_allclose(hr[0], hr_ref, atol=1e-5)
    np.testing.assert_allclose(lr[0], lr_ref, atol=1e-5)
    # the fused LR is not simply the downsampled fused HR: windows disagree
    assert not np.allclose(lr, downsample_lr(torch.from_numpy(hr), KERNEL).numpy(), atol=1e-3)
    assert report.skipped == 0 and report.network_seconds <= report.total_seconds


def test_sliding_without_lr_allows_any_stride_and_reports_progress():
    x = _volume((30, 26, 21), channels=1)
    calls = []
    hr, lr, _ = sliding_window(x, FirstChannel(), (16, 16, 8), (5, 7, 3), progress=lambda d, t: calls.append((d, t)))
    assert lr is None
    np.testing.assert_allclose(hr, x, atol=1e-5)
    assert calls[-1][0] == calls[-1][1] and len(calls) == -(-calls[-1][1] // 4)


FOUR = {0: (0.1, 0.4, 0.4, 0.1), 1: (0.4, 0.4, 0.2, 0.0), 2: (0.5, 0.5, 0.0, 0.0), -1: (0.0, 0.2, 0.4, 0.4)}


@pytest.mark.parametrize("configurations", [FOUR, {o: k for o, k in FOUR.items() if o != -1}])
def test_sliding_fuses_each_patch_configuration_with_its_own_kernel(configurations):
    x = _volume((41, 37, 28), seed=11)
    net = WindowDependent()
    hr, lr, _ = sliding_window(x, net, PATCH, (18, 18, 1), lr_kernel=configurations)
    hr_ref, lr_ref = _brute_force(x, net, PATCH, (18, 18, 1), configurations)
    np.testing.assert_allclose(hr[0], hr_ref, atol=1e-5)
    np.testing.assert_allclose(lr[0], lr_ref, atol=1e-5)
    only_k = sliding_window(x, net, PATCH, (18, 18, 1), lr_kernel=FOUR[0]).lr
    assert not np.allclose(lr, only_k, atol=1e-3)  # the other configurations change sTSE_LR


def test_an_identity_network_gives_the_same_lr_from_every_configuration():
    """With kernels that all describe one slice profile, every configuration predicts the same thick slice."""
    profile = (0.0, 0.5, 0.5, 0.0)  # thick slice j = mean of HR slices 4j+1 and 4j+2
    configurations = {0: profile, 1: shift_kernel(profile, 1), -1: shift_kernel(profile, -1)}
    x = _volume((41, 37, 28), seed=12)
    _, lr, _ = sliding_window(x, FirstChannel(), PATCH, (18, 18, 1), lr_kernel=configurations)
    np.testing.assert_allclose(lr, downsample_lr(torch.from_numpy(x[:1]), profile).numpy(), atol=1e-5)


def test_kernel_shifts_and_mirrors():
    assert shift_kernel((0.1, 0.2, 0.3, 0.4), 1) == pytest.approx((0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9, 0.0))
    assert shift_kernel((0.1, 0.2, 0.3, 0.4), -1) == pytest.approx((0.0, 0.1 / 0.6, 0.2 / 0.6, 0.3 / 0.6))
    assert mirrored_configurations({1: (0.4, 0.4, 0.2, 0.0)}) == {-1: (0.0, 0.2, 0.4, 0.4)}
    with pytest.raises(ValueError, match="must include 0"):
        lr_configurations({1: FOUR[1]})
    with pytest.raises(ValueError, match="distinct modulo 4"):
        lr_configurations({0: FOUR[0], 3: FOUR[1], -1: FOUR[2]})


def test_bad_strides_and_options_are_rejected():
    x = _volume((41, 37, 28))
    with pytest.raises(MRSynthError, match="larger than the patch"):
        sliding_window(x, FirstChannel(), PATCH, (30, 18, 4), lr_kernel=KERNEL)
    with pytest.raises(MRSynthError, match="batch size 0"):
        sliding_window(x, FirstChannel(), PATCH, (18, 18, 4), options=InferenceOptions(batch_size=0))
    with pytest.raises(MRSynthError, match="needs a CUDA device"):
        full_context(x, FirstChannel(), halo=(2, 2, 2), options=InferenceOptions(precision="float16"))
    with pytest.raises(MRSynthError, match="unknown preset"):
        InferenceOptions.preset("fastest")
    with pytest.raises(MRSynthError, match="body mask has shape"):
        sliding_window(x, FirstChannel(), PATCH, (18, 18, 4), mask=np.ones((4, 4, 4), bool))



def test_bfloat16_runs_on_the_cpu_close_to_float32_and_float16_is_refused_there():
    x, net = _volume((20, 24, 16)), _random_highresnet()
    exact = full_context(x, net).hr
    reduced = full_context(x, net, options=InferenceOptions(precision="bfloat16")).hr
    assert reduced.dtype == np.float32 and not np.array_equal(exact, reduced)  # it did run in bfloat16
    assert np.abs(reduced - exact).max() < 0.02 * np.abs(exact).max()  # an 8-bit mantissa's rounding, no more
    with pytest.raises(MRSynthError, match="float16 needs a CUDA device.*use bfloat16 or float32 on cpu"):
        full_context(x, net, options=InferenceOptions(precision="float16"))

def test_presets():
    assert InferenceOptions.preset("fast").mode == "full-context"
    assert InferenceOptions.preset("paper").stride == (18, 18, 4)
    assert InferenceOptions.preset("smooth", batch_size=8) == InferenceOptions(
        mode="sliding", stride=(18, 18, 1), batch_size=8
    )


def test_cancelled_progress_propagates():
    def stop(done, total):
        raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        sliding_window(_volume((41, 37, 28)), FirstChannel(), PATCH, (18, 18, 4), progress=stop)
    with pytest.raises(Cancelled):
        full_context(
            _volume((20, 20, 20)),
            FirstChannel(),
            halo=(2, 2, 2),
            options=InferenceOptions(tile=(8, 8, 8)),
            progress=stop,
        )


def test_full_context_equals_whole_volume_forward():
    net = _random_highresnet()
    x = _volume((40, 36, 24), seed=2)
    with torch.inference_mode():
        whole = net(torch.from_numpy(x)[None])[0].numpy()
    calls = []
    hr, lr, report = full_context(
        x,
        net,
        options=InferenceOptions(tile=(16, 14, 12)),
        lr_kernel=KERNEL,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls[-1] == (18, 18)  # 3 x 3 x 2 tiles
    np.testing.assert_allclose(hr, whole, atol=1e-5)
    np.testing.assert_allclose(lr, downsample_lr(torch.from_numpy(whole), KERNEL).numpy(), atol=1e-6)
    # a halo smaller than the receptive field shows the seams, so the comparison above has teeth
    short, _, _ = full_context(x, net, halo=(3, 3, 3), options=InferenceOptions(tile=(16, 14, 12)))
    assert np.abs(short - whole).max() > 1e-3


def _tile_extents(shape, tile, halo):
    """Lengths of the tiles along each axis, recomputed here from the core sizes."""
    result = []
    for n, t, h in zip(shape, tile, halo, strict=True):
        count = -(-n // t)
        edges = [round(i * n / count) for i in range(count + 1)]
        result.append([min(n, b + h) - max(0, a - h) for a, b in zip(edges[:-1], edges[1:], strict=True)])
    return result


def test_tile_plan_respects_the_budget_and_beats_cubes():
    shape, halo = (180, 216, 180), (28, 28, 28)
    assert plan_tiles(shape, halo, 10**9) == shape  # enough memory: one pass over the whole volume
    budget = 4_200_000
    extents = _tile_extents(shape, plan_tiles(shape, halo, budget), halo)
    assert np.prod([max(e) for e in extents]) <= budget
    cubes = _tile_extents(shape, (128, 128, 128), halo)
    assert np.prod([sum(e) for e in extents]) < 0.8 * np.prod([sum(e) for e in cubes])
    with pytest.raises(MRSynthError, match="allow more memory"):
        plan_tiles(shape, halo, 50_000)
    assert tile_budget(HighResNet(width=8, blocks_per_stage=1), memory_gb=4.0) == int(4e9 / (4 * 8 * 32))


def test_full_context_with_planned_tiles_under_a_small_memory_limit():
    net = _random_highresnet(seed=3)
    x = _volume((40, 36, 24), seed=4)
    with torch.inference_mode():
        whole = net(torch.from_numpy(x)[None])[0].numpy()
    calls = []
    hr, _, _ = full_context(x, net, options=InferenceOptions(memory_gb=0.006), progress=lambda d, t: calls.append(t))
    assert calls[-1] > 1
    np.testing.assert_allclose(hr, whole, atol=1e-5)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(MRSynthError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(MRSynthError, match="no CUDA"):
            resolve_device("cuda")


class RunsOutOfMemory(nn.Module):
    """Wraps a network and raises torch's CUDA out-of-memory error on inputs above a voxel budget.

    This is how the engine meets a GPU that is too small, without needing a GPU.
    """

    def __init__(self, inner: nn.Module, max_voxels: int):
        super().__init__()
        self.inner, self.max_voxels, self.refused = inner, max_voxels, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x[:, 0].numel() > self.max_voxels:
            self.refused += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)

    def receptive_field(self):
        return self.inner.receptive_field()


def test_out_of_memory_halves_the_batch_and_gives_the_same_result():
    x = _volume((41, 37, 28), seed=5)
    net = WindowDependent()
    expected, expected_lr, _ = sliding_window(x, net, PATCH, (18, 18, 4), lr_kernel=KERNEL)
    small = RunsOutOfMemory(net, max_voxels=2 * np.prod(PATCH))
    with pytest.warns(UserWarning) as caught:
        hr, lr, report = sliding_window(
            x, small, PATCH, (18, 18, 4), lr_kernel=KERNEL, options=InferenceOptions(batch_size=8)
        )
    expected_warnings = [f"out of GPU memory: retrying with batches of {n} windows" for n in (4, 2)]
    assert [str(w.message) for w in caught] == expected_warnings
    assert report.batch_size == 2 and report.oom_retries == 2 and small.refused == 2
    np.testing.assert_allclose(hr, expected, atol=1e-6)
    np.testing.assert_allclose(lr, expected_lr, atol=1e-6)
    with pytest.raises(MRSynthError, match="out of GPU memory with a single window"), pytest.warns(UserWarning):
        sliding_window(x, RunsOutOfMemory(net, 10), PATCH, (18, 18, 4), options=InferenceOptions(batch_size=2))


def test_out_of_memory_replans_smaller_tiles_and_gives_the_whole_volume_result():
    net = _random_highresnet(seed=6)
    x = _volume((40, 36, 24), seed=7)
    with torch.inference_mode():
        whole = net(torch.from_numpy(x)[None])[0].numpy()
    small = RunsOutOfMemory(net, max_voxels=25_000)
    with pytest.warns(UserWarning, match="out of GPU memory: retrying with tiles"):
        hr, _, report = full_context(x, small, options=InferenceOptions(memory_gb=10.0))
    assert report.oom_retries >= 1 and report.total > 1
    np.testing.assert_allclose(hr, whole, atol=1e-5)


def test_boxes_touching_matches_a_scan_of_each_box():
    rng = np.random.default_rng(8)
    mask = rng.random((20, 17, 13)) > 0.995
    corners = [
        tuple(rng.integers(0, n - s + 1) for n, s in zip(mask.shape, (6, 5, 4), strict=True)) for _ in range(200)
    ]
    expected = [mask[a : a + 6, b : b + 5, c : c + 4].any() for a, b, c in corners]
    assert boxes_touching(mask, (6, 5, 4), corners).tolist() == expected
    assert any(expected) and not all(expected)


def _head_mask(shape, radius):
    grid = np.indices(shape).astype(float)
    centre = (np.asarray(shape, float) - 1)[:, None, None, None] / 2
    return ((grid - centre) ** 2).sum(0) <= radius**2


@pytest.mark.parametrize("mode", ["sliding", "full-context"])
def test_skipping_background_changes_nothing_inside_the_mask(mode):
    shape = (80, 72, 48)
    x = _volume(shape, seed=9)
    mask = _head_mask(shape, 10)
    net = WindowDependent() if mode == "sliding" else _random_highresnet(seed=10)
    kwargs = {"lr_kernel": KERNEL, "mask": mask}
    if mode == "sliding":
        run = lambda skip: sliding_window(  # noqa: E731
            x, net, PATCH, (8, 8, 4), options=InferenceOptions(skip_background=skip), **kwargs
        )
    else:
        run = lambda skip: full_context(  # noqa: E731
            x, net, options=InferenceOptions(tile=(16, 16, 16), skip_background=skip), **kwargs
        )
    full_hr, full_lr, full_report = run(False)
    hr, lr, report = run(True)
    assert full_report.skipped == 0 and 0 < report.skipped < report.total
    np.testing.assert_allclose(hr[0][mask], full_hr[0][mask], atol=1e-6)
    assert (hr[0][~mask] == 0).any()  # skipped windows leave background
    if mode == "sliding":
        thick_mask = mask.reshape(*shape[:2], -1, 4).all(-1)
        np.testing.assert_allclose(lr[0][thick_mask], full_lr[0][thick_mask], atol=1e-6)


def test_compiled_sliding_equals_eager_with_a_padded_last_batch():
    """torch.compile with frozen weights: same output to float rounding; 5 windows in batches of 2."""
    net = _random_highresnet()
    x = _volume((40, 24, 16))
    eager, _, _ = sliding_window(x, net, PATCH, (8, 24, 16), options=InferenceOptions(mode="sliding", batch_size=2))
    options = InferenceOptions(mode="sliding", batch_size=2, compile=True)
    fast, _, report = sliding_window(x, net, PATCH, (8, 24, 16), options=options)
    assert report.total == 3  # starts 0, 8, 16 along SI: the last batch holds one window
    assert report.compiled
    np.testing.assert_allclose(fast, eager, atol=1e-5)


def test_a_failed_compilation_warns_and_runs_uncompiled(monkeypatch):
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr("mrsynth.compiling.compiled", lambda network: Broken())
    net = _random_highresnet()
    x = _volume((24, 24, 16))
    eager, _, _ = sliding_window(x, net, PATCH, (8, 8, 8), options=InferenceOptions(mode="sliding"))
    options = InferenceOptions(mode="sliding", compile=True)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler found.*running the network uncompiled"):
        out, _, report = sliding_window(x, net, PATCH, (8, 8, 8), options=options)
    assert not report.compiled
    np.testing.assert_allclose(out, eager, atol=1e-6)


def test_compiling_is_refused_for_full_context():
    with pytest.raises(MRSynthError, match="compiling applies to the sliding mode"):
        InferenceOptions(compile=True).checked(torch.device("cpu"))
