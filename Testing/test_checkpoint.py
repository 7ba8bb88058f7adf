"""Self-describing checkpoints load safely and refuse what they cannot be."""

import pytest
import torch

from mrsynth.checkpoint import ModelInfo, load_checkpoint, read_checkpoint, save_checkpoint
from mrsynth.errors import MRSynthError
from mrsynth.networks import HighResNet

ARGS = {"in_channels": 2, "out_channels": 1, "width": 2, "blocks_per_stage": 1, "dilations": [[1, 1, 1], [2, 2, 1]]}


def _info(**kw) -> ModelInfo:
    base = dict(
        name="tiny", architecture="HighResNet", arguments=ARGS, inputs=["GE_aOP", "GE_aIP"], output="TSE_T1w",
        voxel_size=[1.0, 1.0, 1.0], patch=[16, 16, 8], stride=[8, 8, 4], lr_kernel=[0.25] * 4,
    )
    base.update(kw)
    return ModelInfo(**base)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    net = HighResNet(**ARGS)
    path = save_checkpoint(tmp_path / "m.pt", net, _info())
    return net, path


def test_round_trip_weights_only(saved):
    net, path = saved
    raw = torch.load(path, weights_only=True)  # plain data only: loads without executing code
    assert raw["info"]["inputs"] == ["GE_aOP", "GE_aIP"]
    loaded = load_checkpoint(path)
    assert not loaded.network.training
    x = torch.randn(1, 2, 12, 12, 12)
    net.eval()
    torch.testing.assert_close(loaded.network(x), net(x))
    assert loaded.info == _info()


def test_wrong_number_of_inputs(saved):
    _, path = saved
    with pytest.raises(MRSynthError, match="takes 2 inputs"):
        load_checkpoint(path).check_inputs(1)


def test_truncated_file(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MRSynthError, match="truncated or not an MRSynth checkpoint"):
        load_checkpoint(cut)


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    with pytest.raises(MRSynthError, match="truncated or not an MRSynth checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(MRSynthError, match="not an MRSynth checkpoint"):
        load_checkpoint(other)


def test_unknown_architecture(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", HighResNet(**ARGS), _info(architecture="Transformer9000"))
    with pytest.raises(MRSynthError, match="unknown architecture"):
        load_checkpoint(path)


def test_weights_that_do_not_fit(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", HighResNet(**ARGS), _info(arguments={**ARGS, "width": 3}))
    with pytest.raises(MRSynthError, match="do not fit"):
        load_checkpoint(path)


def test_missing(tmp_path):
    with pytest.raises(MRSynthError, match="does not exist"):
        read_checkpoint(tmp_path / "none.pt")
