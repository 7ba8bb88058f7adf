"""Grid search with k-fold cross-validation and seeds: every run trained once, ranked, resumable."""

from __future__ import annotations

import csv

import pytest
import SimpleITK as sitk
import yaml

from mrsynth import cli
from mrsynth.errors import MRSynthError
from mrsynth.grid_search import combinations, folds, ranking
from mrsynth.simulate import bundled_phantom, simulate


def test_combinations_and_folds():
    grid = {"learning_rate": [1e-3, 1e-4], "model.width": [8, 16, 32]}
    combos = combinations(grid)
    assert len(combos) == 6 and {"learning_rate": 1e-4, "model.width": 32} in combos
    splits = folds(["a", "b", "c", "d", "e"], 5)
    assert all(len(val) == 1 and set(train) | set(val) == set("abcde") for train, val in splits)
    assert sorted(v[0] for _, v in splits) == list("abcde")
    with pytest.raises(MRSynthError, match="folds need"):
        folds(["a", "b"], 3)
    rows = [{"w": 8, "best_val_loss": 0.3}, {"w": 8, "best_val_loss": 0.1}, {"w": 16, "best_val_loss": 0.15}]
    assert ranking(rows, ["w"]) == [({"w": 16}, 0.15), ({"w": 8}, 0.2)]


def test_grid_search_command_trains_each_run_once_and_resumes(tmp_path, capsys):
    phantom = bundled_phantom()
    cases = []
    for i, start in enumerate([(60, 50, 50), (100, 70, 60)]):
        cases.append(tmp_path / f"case{i}")
        simulate(sitk.RegionOfInterest(phantom, (44, 40, 36), start), "brainweb", cases[-1], seed=i)
    config = {
        "model": {"width": 2, "blocks_per_stage": 1},
        "patch": [24, 24, 16],
        "batch_size": 1,
        "iterations": 2,
        "epoch_patches": 1,
        "val_patches": 1,
        "threads": 1,
        "device": "cpu",
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(config))
    argv = ["grid-search", str(tmp_path / "base.yaml"), "--cases", *map(str, cases), "--folds", "2"]
    argv += ["--grid", "model.width=2,3", "--seeds", "0", "--out-dir", str(tmp_path / "search")]
    assert cli.main(argv) == 0
    with open(tmp_path / "search" / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2  # widths x folds
    run = tmp_path / "search" / rows[0]["run"]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["blocks_per_stage"] == 1 and len(saved["data"]["val"]) == 1
    stamp = (run / "model.pt").stat().st_mtime_ns
    assert cli.main(argv) == 0  # everything done: nothing is retrained
    assert (run / "model.pt").stat().st_mtime_ns == stamp
    assert "ranking" in capsys.readouterr().out
