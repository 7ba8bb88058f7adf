"""Transfer learning to several contrasts (paper 003, section 3.2): weight duplication."""

import pytest
import torch

from mrsynth.checkpoint import ModelInfo, load_checkpoint, save_checkpoint
from mrsynth.cli import main
from mrsynth.errors import MRSynthError
from mrsynth.networks import MRSR
from mrsynth.transfer import expand_contrasts


def _single(path):
    torch.manual_seed(0)
    net = MRSR(1, 1, depth=3, width=4)
    with torch.no_grad():
        net.head.weight.normal_(std=0.1)
        net.head.bias.fill_(0.01)
    info = ModelInfo(
        name="sr", architecture="MRSR", arguments={"in_channels": 1, "out_channels": 1, "depth": 3, "width": 4},
        inputs=["any"], output="any", voxel_size=[1.0] * 3, patch=[32] * 3, stride=[16] * 3,
        task="super-resolution", slice_factor=4, slice_axis="any",
    )  # fmt: skip
    return save_checkpoint(path, net, info)


def test_first_layer_is_duplicated_per_input_and_last_layer_per_output(tmp_path):
    original = load_checkpoint(_single(tmp_path / "sr.pt"))
    converted = expand_contrasts(original, ["DESS_S1", "DESS_S2"])
    old, new = original.network.state_dict(), converted.network.state_dict()
    assert new["body.0.weight"].shape[1] == 2
    for c in range(2):
        torch.testing.assert_close(new["body.0.weight"][:, c : c + 1] * 2, old["body.0.weight"])
        torch.testing.assert_close(new["head.weight"][c : c + 1], old["head.weight"])
        torch.testing.assert_close(new["head.bias"][c], old["head.bias"][0])
    torch.testing.assert_close(new["body.2.weight"], old["body.2.weight"])  # inner layers unchanged
    x = torch.rand(1, 1, 12, 12, 12)
    with torch.no_grad():  # the same image in both channels gives the original output in both
        torch.testing.assert_close(
            converted.network(x.repeat(1, 2, 1, 1, 1)), original.network(x).repeat(1, 2, 1, 1, 1)
        )
    assert converted.info.outputs == ["DESS_S1", "DESS_S2"] and converted.info.training["transferred_from"] == "sr"


def test_ratio_residual_transfer_restores_the_first_echo_alone_and_keeps_the_echo_ratio(tmp_path):
    original = load_checkpoint(_single(tmp_path / "sr.pt"))
    converted = expand_contrasts(original, ["DESS_S1", "DESS_S2"], ratio_residual=True)
    assert converted.info.arguments["ratio_residual"] is True
    x = 0.5 + torch.rand(1, 2, 12, 12, 12)  # both echoes bright: ratios between 1/3 and 3
    with torch.no_grad():
        out = converted.network(x)
        # the first echo's features see the mean of the two channels, as the single-contrast model sees one image
        torch.testing.assert_close(
            out[:, :1], original.network(x.mean(dim=1, keepdim=True)) - x.mean(1, True) + x[:, :1]
        )
    torch.testing.assert_close(out[:, 1] / out[:, 0], x[:, 1] / x[:, 0])
    assert not torch.allclose(out[:, 0], x[:, 0])


def test_transfer_command_writes_a_loadable_model_and_refuses_multi_contrast_sources(tmp_path, capsys):
    source = _single(tmp_path / "sr.pt")
    out = tmp_path / "dess.pt"
    assert main(["transfer", str(source), "--contrasts", "S1", "S2", "--output", str(out)]) == 0
    loaded = load_checkpoint(out)
    assert loaded.info.arguments["in_channels"] == 2 and loaded.info.task == "super-resolution"
    assert main(["transfer", str(out), "--contrasts", "A", "B", "--output", str(tmp_path / "x.pt")]) == 2
    assert "single-contrast" in capsys.readouterr().err
    with pytest.raises(MRSynthError, match="distinct"):
        expand_contrasts(load_checkpoint(source), ["S1", "S1"])


def test_a_converted_model_fine_tunes_on_two_contrasts(tmp_path):
    from test_sr_training import _case

    source = load_checkpoint(_single(tmp_path / "sr.pt"))
    converted = expand_contrasts(source, ["TSE_HR", "TSE_T2_HR"])
    save_checkpoint(tmp_path / "two.pt", converted.network, converted.info)
    case = _case(tmp_path / "c", 0)
    args = [
        "train", "--task", "superres", "--run-dir", str(tmp_path / "run"), "--set", f"data.train=[{case}]",
        "--set", "data.contrasts=[TSE_HR, TSE_T2_HR]", "--set", "data.joint_contrasts=true",
        "--set", f"init_weights={tmp_path / 'two.pt'}", "--set", "model.depth=3", "--set", "model.width=4",
        "--set", "iterations=2", "--set", "batch_size=1", "--set", "device=cpu",
    ]  # fmt: skip
    assert main(args) == 0
    tuned = load_checkpoint(tmp_path / "run" / "model.pt")
    assert tuned.info.arguments["in_channels"] == 2 and tuned.info.outputs == ["TSE_HR", "TSE_T2_HR"]
