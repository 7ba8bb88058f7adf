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


def test_pointwise_branch_adds_a_per_voxel_function_of_the_inputs():
    torch.manual_seed(0)
    net = HighResNet(width=4, blocks_per_stage=1, pointwise_width=8).eval().double()
    x = torch.randn(1, 2, 20, 20, 12, dtype=torch.float64)
    branch = net.pointwise(x)
    torch.testing.assert_close(net(x), net.head(net.blocks(x)) + branch)
    # one voxel's inputs changed: the branch changes there and nowhere else
    x2 = x.clone()
    x2[0, :, 7, 9, 5] += 1.0
    changed = (net.pointwise(x2) - branch).abs()[0, 0] > 0
    assert changed[7, 9, 5] and int(changed.sum()) == 1


def test_without_the_branch_the_weights_are_the_papers_highresnet():
    """Width 0 (the default) adds no parameters, so checkpoints from before the option still load."""
    plain = HighResNet(width=4, blocks_per_stage=1)
    assert plain.pointwise is None
    assert set(HighResNet(width=4, blocks_per_stage=1, pointwise_width=0).state_dict()) == set(plain.state_dict())
    with_branch = set(HighResNet(width=4, blocks_per_stage=1, pointwise_width=8).state_dict())
    assert {k for k in with_branch - set(plain.state_dict())} == {
        f"pointwise.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")
    }
    with pytest.raises(MRSynthError, match="pointwise_width"):
        HighResNet(pointwise_width=-1)
