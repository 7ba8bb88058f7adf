"""DRUNet (paper 004): shapes per depth, 2D and 2.5D, odd sizes, and the slice-wise 3D wrapper."""

from __future__ import annotations

import pytest
import torch

from mrsynth.drunet import DRUNet, DRUNetSlices
from mrsynth.errors import MRSynthError
from mrsynth.networks import build_network


@pytest.mark.parametrize("depth", [34, 50, 101])
@pytest.mark.parametrize("size", [(64, 64), (45, 70)])
def test_output_has_the_input_size_for_each_depth(depth, size):
    torch.manual_seed(0)
    net = DRUNet(depth, in_channels=3, out_channels=1, width=4).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 1, *size)
    assert torch.isfinite(out).all()


def test_depths_differ_in_blocks_as_in_resnet():
    counts = {d: sum(isinstance(m, torch.nn.Conv2d) for m in DRUNet(d, width=4).modules()) for d in (34, 50, 101)}
    assert counts[34] < counts[50] < counts[101]
    with pytest.raises(MRSynthError, match="34, 50 or 101"):
        DRUNet(18)


def test_output_is_cropped_from_a_replicate_padded_input():
    """A 45 x 70 slice gives what the top-left of its 64 x 96 edge-replicated version gives."""
    torch.manual_seed(0)
    net = DRUNet(34, width=4).eval()
    x = torch.randn(1, 1, 45, 70)
    padded = torch.nn.functional.pad(x, (0, 26, 0, 19), mode="replicate")
    with torch.no_grad():
        assert torch.allclose(net(x), net(padded)[..., :45, :70], atol=1e-5)


@pytest.mark.parametrize("context", [0, 1])
def test_wrapper_runs_axial_slices_of_a_3d_volume(context):
    torch.manual_seed(0)
    model = build_network("DRUNetSlices", {"depth": 34, "width": 4, "context": context}).eval()
    volume = torch.randn(2, 1, 5, 40, 36) * 500
    assert model.slice_channels(volume).shape == (10, 2 * (2 * context + 1), 40, 36)
    with torch.no_grad():
        out = model(volume)
        single = model(volume[:, :, 2:3]) if context == 0 else None
    assert out.shape == (2, 1, 5, 40, 36)
    if single is not None:  # 2D: a slice's output does not depend on the others
        assert torch.allclose(out[:, :, 2:3], single, atol=1e-5)


def test_2p5d_channels_are_the_neighbouring_slices_with_edges_repeated():
    model = DRUNetSlices(depth=34, width=4, context=1, windows=[(0.0, 2000.0)])
    volume = torch.arange(3.0).view(1, 1, 3, 1, 1).expand(1, 1, 3, 2, 2) * 100
    channels = model.slice_channels(volume)[:, :, 0, 0]
    expected = (torch.tensor([[0, 0, 1], [0, 1, 2], [1, 2, 2]]) * 100 + 1000) / 2000
    assert torch.allclose(channels, expected)


def test_sigmoid_output_stays_in_its_range():
    model = DRUNetSlices(depth=34, width=4, output="sigmoid", output_scale=1.5).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 2, 32, 32) * 1000)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.5
