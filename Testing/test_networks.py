"""HighResNet as modified in paper 000 (section II.C.2)."""

import pytest
import torch

from mrsynth.errors import MRSynthError
from mrsynth.networks import HighResNet, build_network, isotropic_dilations


def test_dilations_reproduce_the_papers_examples():
    assert isotropic_dilations((0.488, 0.488, 0.825))[2] == (4, 4, 2)
    assert isotropic_dilations((0.488, 0.488, 3.3))[2] == (4, 4, 1)
    assert isotropic_dilations((1.0, 1.0, 1.0)) == [(1, 1, 1), (2, 2, 2), (4, 4, 4)]


def test_structure_no_stem_projection_shortcuts_doubling_channels():
    net = HighResNet(in_channels=2, out_channels=1, width=4, blocks_per_stage=2)
    first = net.blocks[0]
    assert isinstance(first.body[0], torch.nn.BatchNorm3d)  # pre-activation, no convolution before the blocks
    assert first.shortcut.kernel_size == (1, 1, 1) and first.shortcut.in_channels == 2
    widths = [b.body[2].out_channels for b in net.blocks]
    assert widths == [4, 4, 8, 8, 16, 16]
    assert isinstance(net.blocks[1].shortcut, torch.nn.Identity)
    assert net.head.kernel_size == (1, 1, 1)
    assert all(b.body[2].padding_mode == "reflect" for b in net.blocks)


@pytest.mark.parametrize("seed", range(5))
def test_output_keeps_input_size_and_receptive_field_is_measured(seed):
    torch.manual_seed(seed)
    net = HighResNet(width=4, blocks_per_stage=1, dilations=[(1, 1, 1), (2, 2, 1)]).eval().double()
    rf = net.receptive_field()
    assert rf == (1 + 4 * 1 + 4 * 2, 1 + 4 * 1 + 4 * 2, 1 + 4 + 4)
    # An impulse response: change one voxel and see how far the output changes. A random background
    # keeps ReLUs open in every direction (on zeros a thin net can close them by chance).
    x = torch.randn(1, 2, 41, 41, 41, dtype=torch.float64)
    y0 = net(x)
    x[0, :, 20, 20, 20] = 1.0
    changed = (net(x) - y0).abs()[0, 0] > 0
    assert y0.shape[2:] == x.shape[2:]
    extent = [int(changed.any(dim=tuple(d for d in range(3) if d != a)).sum()) for a in range(3)]
    assert extent == list(rf)


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(MRSynthError, match="unknown architecture"):
        build_network("VNet", {})
