"""The command line: every subcommand has --help, and every bad input of the issue's list gives a
one-line error, a non-zero exit code and no output file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from mrsynth import cli
from mrsynth.checkpoint import ModelInfo, save_checkpoint
from mrsynth.networks import HighResNet

SUBCOMMANDS = [
    "simulate",
    "train",
    "train-kernel",
    "grid-search",
    "synthesize",
    "evaluate",
    "register",
    "transform",
    "prepare",
    "models",
    "demo",
]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: mrsynth " + command in capsys.readouterr().out


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "mrsynth", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("mrsynth ")


def _volume(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> Path:
    image = sitk.GetImageFromArray(array)
    if image.GetDimension() == 3:
        image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def _head(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[-1:1:24j, -1:1:28j, -1:1:20j]
    return ((x**2 + y**2 + z**2 < 0.6) * 100 + rng.normal(0, 2, z.shape)).astype(np.float32)


@pytest.fixture
def setup(tmp_path):
    torch.manual_seed(0)
    args = {"in_channels": 2, "out_channels": 1, "width": 2, "blocks_per_stage": 1}
    info = ModelInfo(
        name="tiny", architecture="HighResNet", arguments=args, inputs=["GE_aOP", "GE_aIP"], output="TSE",
        voxel_size=[1.0, 1.0, 1.0], patch=[16, 16, 8], stride=[8, 8, 4], lr_kernel=[0.25] * 4,
    )
    model = save_checkpoint(tmp_path / "model.pt", HighResNet(**args), info)
    good = [_volume(tmp_path / "aop.mha", _head(0)), _volume(tmp_path / "aip.mha", _head(1))]
    out = tmp_path / "out"
    out.mkdir()
    return tmp_path, model, good, out


def _bad_inputs(tmp: Path, model: Path, good: list[Path], out: Path) -> dict[str, tuple[list[str], str]]:
    """Each case: synthesize arguments and a phrase its error must contain."""
    out_file = str(out / "s.nii.gz")
    nan = _head(2)
    nan[3, 4, 5] = np.nan
    inf = _head(3)
    inf[3, 4, 5] = np.inf
    truncated = tmp / "truncated.pt"
    truncated.write_bytes(model.read_bytes()[:2000])
    not_checkpoint = tmp / "notes.pt"
    not_checkpoint.write_text("not a model")
    unreadable = tmp / "garbage.nii.gz"
    unreadable.write_bytes(b"\x00garbage")
    flat = _volume(tmp / "flat.mha", np.ones((20, 28), np.float32))
    volume = sitk.GetImageFromArray(_head(4))
    four_d = tmp / "four_d.nii.gz"
    sitk.WriteImage(sitk.JoinSeries([volume, volume]), str(four_d))
    m, g0, g1 = str(model), str(good[0]), str(good[1])
    return {
        "missing input": ([m, g0, str(tmp / "absent.nii.gz"), "--output", out_file], "does not exist"),
        "unreadable input": ([m, g0, str(unreadable), "--output", out_file], "could not be read"),
        "2D image": ([m, g0, str(flat), "--output", out_file], "2D"),
        "4D image": ([m, g0, str(four_d), "--output", out_file], "4D"),
        "NaN voxels": ([m, g0, str(_volume(tmp / "nan.mha", nan)), "--output", out_file], "NaN or Inf"),
        "Inf voxels": ([m, g0, str(_volume(tmp / "inf.mha", inf)), "--output", out_file], "NaN or Inf"),
        "all-zero image": (
            [m, g0, str(_volume(tmp / "zero.mha", np.zeros_like(_head(0)))), "--output", out_file], "all zero"
        ),
        "grids differ": (
            [m, g0, str(_volume(tmp / "other.mha", _head(5), spacing=(1.0, 1.0, 2.0))), "--output", out_file],
            "different grids",
        ),
        "wrong number of inputs": ([m, g0, "--output", out_file], "takes 2 inputs"),
        "truncated checkpoint": ([str(truncated), g0, g1, "--output", out_file], "truncated"),
        "not a checkpoint": ([str(not_checkpoint), g0, g1, "--output", out_file], "not an MRSynth checkpoint"),
        "output folder missing": ([m, g0, g1, "--output", str(tmp / "nowhere" / "s.nii.gz")], "does not exist"),
        "LR stride whose aligned windows leave gaps": (
            [m, g0, g1, "--output", out_file, "--mode", "sliding", "--stride", "8", "8", "6"],
            "leave thick slices uncovered",
        ),
    }


CASES = [
    "missing input", "unreadable input", "2D image", "4D image", "NaN voxels", "Inf voxels", "all-zero image",
    "grids differ", "wrong number of inputs", "truncated checkpoint", "not a checkpoint", "output folder missing",
    "LR stride whose aligned windows leave gaps",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_error_and_no_output(setup, case, capsys):
    tmp, model, good, out = setup
    args, phrase = _bad_inputs(tmp, model, good, out)[case]
    code = cli.main(["synthesize", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("mrsynth synthesize: error:"), err
    assert phrase in err, err
    assert list(out.iterdir()) == []  # nothing written, not even a temporary file


def test_good_input_writes_the_output(setup, capsys):
    _, model, good, out = setup
    code = cli.main(["synthesize", str(model), *map(str, good), "--output", str(out / "s.nii.gz")])
    assert code == 0, capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["s.nii.gz"]


def test_evaluate_refuses_mismatched_grids(setup, capsys):
    tmp, _, good, out = setup
    other = _volume(tmp / "other.mha", _head(5), spacing=(1.0, 1.0, 2.0))
    code = cli.main(["evaluate", str(good[0]), str(other), "--json", str(out / "m.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "different grids" in err and len(err.splitlines()) == 1
    assert list(out.iterdir()) == []


def test_simulate_refuses_an_unknown_atlas_label(tmp_path, capsys):
    labels = np.zeros((8, 8, 8), np.uint8)
    labels[2:6, 2:6, 2:6] = 42
    path = _volume(tmp_path / "labels.nii.gz", labels)
    code = cli.main(["simulate", str(path), "--atlas", "brainweb", "--out-dir", str(tmp_path / "sim")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "42" in err and len(err.splitlines()) == 1


def test_train_refuses_a_config_naming_an_unknown_task(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("task: superresolution\niterations: 2\n", encoding="utf-8")
    code = cli.main(["train", "--config", str(config), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "'superresolution'" in err and "superres" in err.split("one of")[1]
    assert not (tmp_path / "run").exists()
