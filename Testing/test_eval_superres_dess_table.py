"""scripts/eval_superres.py's Table 2 (``dess_table``) on a small simulated head: models, their mean, paired tests."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from slicer_support import ROOT

from mrsynth.checkpoint import LoadedModel, ModelInfo
from mrsynth.networks import MRSR

sys.path.insert(0, str(ROOT / "scripts"))
import eval_superres  # noqa: E402


def _model(offset: float) -> LoadedModel:
    """A single-contrast x4 MRSR that adds ``offset`` (normalised units) to its interpolated input."""
    network = MRSR(1, 1, depth=2, width=2).eval()
    with torch.no_grad():
        network.head.bias.fill_(offset)
    info = ModelInfo(
        name="tiny-sr", architecture="MRSR", arguments={"in_channels": 1, "out_channels": 1, "depth": 2, "width": 2},
        inputs=["any"], output="any", voxel_size=[1.0, 1.0, 1.0], patch=[32, 32, 32], stride=[16, 16, 16],
        approach="residual-on-interpolation", task="super-resolution", slice_factor=4, slice_axis="any",
    )  # fmt: skip
    return LoadedModel(network=network, info=info)


def _head_labels(path) -> str:
    """SynthSeg labels of a ball: skin, grey matter, white matter and a CSF 'ventricle'."""
    grid = np.indices((36, 36, 36)) - 17.5
    radius = np.sqrt((grid**2).sum(axis=0))
    labels = np.zeros((36, 36, 36), dtype=np.int16)
    labels[radius < 16] = 509
    labels[radius < 14] = 3
    labels[radius < 9] = 2
    labels[14:22, 15:21, 12:24] = 4
    sitk.WriteImage(sitk.GetImageFromArray(labels), str(path))
    return str(path)


def test_dess_table_scores_each_model_and_their_mean(tmp_path):
    models = {"A": _model(0.0), "B": _model(0.02)}
    labels = [(_head_labels(tmp_path / "labels.nii.gz"), "synthseg")]
    report = eval_superres.dess_table(models, 4, labels, tmp_path, axes=(0, 2), back_projections=1, mean=True)
    methods = {"GT", "A", "B", "MEAN", "A+BP", "B+BP", "MEAN+BP", "TCI", "FI"}
    assert set(report["summary"]) == methods
    assert [(r["axis"], r["region"]) for r in report["rows"]] == [
        (axis, region) for axis in ("SI", "LR") for region in ("csf", "gm", "wm")
    ]
    for row in report["rows"]:
        # an untrained model returns the interpolation
        assert row["A"] == pytest.approx(row["TCI"], rel=1e-5)
        # the offset moves each echo's level, and with it each voxel's T2 monotonically: the mean of the two
        # models' echoes (half the offset) gives T2 between theirs
        low, high = sorted((row["A"], row["B"]))
        assert low - 1e-6 <= row["MEAN"] <= high + 1e-6
        # one pass of back-projection takes out a constant offset exactly (the filter passes it unchanged)
        assert row["B+BP"] == pytest.approx(row["A+BP"], rel=1e-5) == row["MEAN+BP"]
    assert all(row["A"] != row["B"] for row in report["rows"] if row["region"] == "csf")
    for axis in ("SI", "LR"):
        assert {"MEAN vs TCI", "MEAN vs FI", "MEAN+BP vs FI"} <= set(report["summary_by_axis"][axis])
    # the paired tests compare absolute differences from the truth row by row: their mean is the summary's margin
    for scope, rows in (("own", report["rows"]), ("pairwise", report["rows_pairwise"]["MEAN vs FI"])):
        test = report["paired_tests"][scope]["MEAN vs FI"]
        errors = [abs(r["MEAN"] - r["GT"]) - abs(r["FI"] - r["GT"]) for r in rows]
        assert test["pairs"] == len(rows) == 6 and test["mean_difference"] == pytest.approx(np.mean(errors))
        assert 0 <= test["p_value"] <= 1
    margin = report["summary"]["B"]["diff_mean"] - report["summary"]["TCI"]["diff_mean"]
    assert report["paired_tests"]["own"]["B vs TCI"]["mean_difference"] == pytest.approx(margin)
    assert report["summary_by_axis"]["LR"]["paired_tests"]["own"]["A+BP vs FI"]["pairs"] == 3
    # a region without a T2 leaves its row out of the test, not the test out of the report
    rows = [dict(r) for r in report["rows"]]
    rows[0]["B"] = float("nan")
    assert eval_superres.paired_tests(rows, {}, ("B", "TCI"))["own"]["B vs TCI"]["pairs"] == 5
    assert eval_superres.paired_tests(rows[:2], {}, ("B", "TCI"))["own"]["B vs TCI"] is None
    psnr = {m: np.mean([q[m]["S1"] for q in report["echo_psnr"]]) for m in ("B", "B+BP", "MEAN", "MEAN+BP")}
    assert psnr["B+BP"] > psnr["B"] and psnr["MEAN+BP"] > psnr["MEAN"]
