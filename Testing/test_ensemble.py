"""Ensembles (our addition): the mean of models trained alike, stored and run as one model."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from mrsynth.checkpoint import ModelInfo, load_checkpoint, save_checkpoint
from mrsynth.cli import main
from mrsynth.ensemble import combine
from mrsynth.errors import MRSynthError
from mrsynth.slice_unet import SliceUNet
from mrsynth.synthesis import synthesize


def _member(path, seed, output="FLAIR", levels=2):
    torch.manual_seed(seed)
    net = SliceUNet(1, 1, width=4, levels=levels, batch_norm=False)
    info = ModelInfo(
        name=f"m{seed}", architecture="SliceUNet",
        arguments={"in_channels": 1, "out_channels": 1, "width": 4, "levels": levels, "batch_norm": False},
        inputs=["T1c"], output=output, voxel_size=[1.0] * 3, patch=[1, 32, 32], stride=[1, 16, 16],
        approach="mri2mri", training={"seed": seed},
    )  # fmt: skip
    return save_checkpoint(path, net, info)


def test_ensemble_returns_the_members_mean_and_survives_a_checkpoint_round_trip(tmp_path):
    members = [load_checkpoint(_member(tmp_path / f"m{s}.pt", s)) for s in (0, 1, 2)]
    ensemble = combine(members, name="avg")
    x = torch.rand(1, 1, 3, 20, 24)
    with torch.no_grad():
        outputs = [m.network(x) for m in members]
        assert not torch.allclose(outputs[0], outputs[1])  # the members differ, so the mean is a real test
        torch.testing.assert_close(ensemble.network(x), sum(outputs) / 3)
        reloaded = load_checkpoint(save_checkpoint(tmp_path / "avg.pt", ensemble.network, ensemble.info))
        torch.testing.assert_close(reloaded.network(x), sum(outputs) / 3)
    assert reloaded.info.architecture == "Ensemble" and reloaded.info.name == "avg"
    assert [m["training"]["seed"] for m in reloaded.info.training["members"]] == [0, 1, 2]
    assert reloaded.network.receptive_field() == members[0].network.receptive_field()


def test_ensemble_receptive_field_is_the_largest_members(tmp_path):
    small = load_checkpoint(_member(tmp_path / "a.pt", 0, levels=2))
    large = load_checkpoint(_member(tmp_path / "b.pt", 1, levels=3))
    field = combine([small, large]).network.receptive_field()
    assert field == large.network.receptive_field() and field != small.network.receptive_field()


def test_ensemble_synthesizes_the_mean_of_its_members_volumes(tmp_path):
    members = [load_checkpoint(_member(tmp_path / f"m{s}.pt", s)) for s in (0, 1)]
    ensemble = combine(members)
    rng = np.random.default_rng(0)
    array = np.zeros((6, 24, 20), np.float32)
    array[1:5, 4:20, 4:16] = 100 + 50 * rng.random((4, 16, 12))
    image = sitk.GetImageFromArray(array)
    results = [sitk.GetArrayFromImage(synthesize(m, [image], device="cpu").hr) for m in (*members, ensemble)]
    np.testing.assert_allclose(results[2], (results[0] + results[1]) / 2, atol=1e-5)


def test_models_used_differently_or_alone_are_refused(tmp_path):
    flair = load_checkpoint(_member(tmp_path / "a.pt", 0))
    t2 = load_checkpoint(_member(tmp_path / "b.pt", 1, output="T2w"))
    with pytest.raises(MRSynthError, match="output differ"):
        combine([flair, t2])
    with pytest.raises(MRSynthError, match="two or more"):
        combine([flair])


def test_ensemble_command_writes_a_loadable_model(tmp_path, capsys):
    paths = [str(_member(tmp_path / f"m{s}.pt", s)) for s in (0, 1)]
    out = tmp_path / "e.pt"
    assert main(["ensemble", *paths, "--output", str(out), "--name", "t1c-avg", "--version", "4"]) == 0
    loaded = load_checkpoint(out)
    assert (loaded.info.name, loaded.info.version, len(loaded.network.members)) == ("t1c-avg", "4", 2)
    assert main(["ensemble", paths[0], "--output", str(tmp_path / "one.pt")]) == 2
    assert "two or more" in capsys.readouterr().err
    assert main(["ensemble", *paths, "--output", str(tmp_path / "e.nii.gz")]) == 2
    assert "should end in .pt" in capsys.readouterr().err and not (tmp_path / "e.nii.gz").exists()


def test_an_ensemble_of_two_echo_super_resolution_models_takes_both_echoes(tmp_path):
    from mrsynth.networks import MRSR

    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        arguments = {"in_channels": 2, "out_channels": 2, "depth": 2, "width": 4}
        info = ModelInfo(
            name="dess", architecture="MRSR", arguments=arguments, inputs=["S1 (thick)", "S2 (thick)"], output="S1",
            outputs=["S1", "S2"], voxel_size=[1.0] * 3, patch=[32] * 3, stride=[16] * 3, task="super-resolution",
        )  # fmt: skip
        members.append(load_checkpoint(save_checkpoint(tmp_path / f"{seed}.pt", MRSR(**arguments), info)))
    assert combine(members).info.in_channels == 2 and members[0].info.in_channels == 2


def test_a_member_comes_back_out_whole(tmp_path, capsys):
    paths = [_member(tmp_path / f"m{s}.pt", s) for s in (0, 1)]
    out = tmp_path / "e.pt"
    assert main(["ensemble", *map(str, paths), "--output", str(out)]) == 0
    assert main(["ensemble", str(out), "--member", "1", "--output", str(tmp_path / "one.pt")]) == 0
    original, extracted = load_checkpoint(paths[1]), load_checkpoint(tmp_path / "one.pt")
    assert extracted.info.architecture == "SliceUNet" and extracted.info.training == {"seed": 1}
    for key, value in original.network.state_dict().items():
        torch.testing.assert_close(extracted.network.state_dict()[key], value)
    assert main(["ensemble", str(out), "--member", "2", "--output", str(tmp_path / "x.pt")]) == 2
    assert "give --member 0 to 1" in capsys.readouterr().err
    assert main(["ensemble", str(paths[0]), "--member", "0", "--output", str(tmp_path / "y.pt")]) == 2
    assert "not an ensemble" in capsys.readouterr().err
