"""DESS T2 (paper 003, Table 2): the signal model, the analytic estimator, CCC and CV."""

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from mrsynth.cli import main
from mrsynth.dess import cv_percent, estimate_t2, lins_ccc, simulate_dess, tissue_dess
from mrsynth.simulate import bundled_phantom, load_spec, simulate
from mrsynth.volume_io import to_paper


def test_estimator_recovers_the_tissue_tables_t2_from_noise_free_echoes():
    spec = load_spec()
    table = tissue_dess(spec)
    pure = np.isfinite(table["T2"])
    t2 = estimate_t2(table["S1"][pure], table["S2"][pure], table["T1"][pure])
    np.testing.assert_allclose(t2, table["T2"][pure], rtol=0.01)
    assert {"csf", "gm", "wm", "fat", "muscle"} <= {n for n, p in zip(spec["tissues"], pure) if p}


def test_simulated_volume_gives_the_table_t2_inside_tissues():
    spec = load_spec()
    labels = to_paper(bundled_phantom())[60:90, 60:100, 60:100].astype(np.int64)
    dess = simulate_dess(labels, "brainweb", spec)
    t2 = estimate_t2(dess["S1"], dess["S2"], dess["T1"])
    wm = spec["tissues"]["wm"]
    core = dess["tissues"] == list(spec["tissues"]).index("wm")
    assert np.nanmedian(t2[core]) == pytest.approx(wm["T2"], rel=0.01)
    assert np.isnan(estimate_t2(np.zeros(3), np.zeros(3), 500.0)).all()  # air has no T2


def test_ccc_and_cv():
    x = np.array([35.2, 42.6, 27.9, 35.3, 36.6])
    assert lins_ccc(x, x) == pytest.approx(1.0)
    assert lins_ccc(x, x + 5) < lins_ccc(x, x + 1) < 1.0
    assert lins_ccc(x, 2 * x.mean() - x) == pytest.approx(-1.0)
    np.testing.assert_allclose(cv_percent([10.0], [12.0]), [np.std([10, 12], ddof=1) / 11 * 100])


def test_simulate_writes_dess_echoes_on_the_high_resolution_grid_and_leaves_the_rest(tmp_path: Path):
    labels = sitk.GetArrayFromImage(bundled_phantom())[60:76, 40:120, 40:120].copy()
    image = sitk.GetImageFromArray(labels)
    without = simulate(image, "brainweb", seed=3, slice_factor=4)
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(image, str(path))
    assert main(["simulate", str(path), "--atlas", "brainweb", "--out-dir", str(tmp_path / "case"), "--seed", "3",
                 "--slice-factor", "4", "--dess"]) == 0  # fmt: skip
    written = {p.name.removesuffix(".nii.gz"): sitk.ReadImage(str(p)) for p in (tmp_path / "case").glob("*.nii.gz")}
    assert set(written) - set(without) == {"DESS_S1", "DESS_S2", "DESS_T1"}
    for name, volume in without.items():
        assert np.array_equal(sitk.GetArrayViewFromImage(volume), sitk.GetArrayViewFromImage(written[name])), name
    assert written["DESS_S1"].GetSize() == without["TSE_HR"].GetSize()
    # the written echoes and T1 map give the table's white-matter T2 in the white matter
    s1, s2, t1 = (to_paper(written[f"DESS_{n}"]) for n in ("S1", "S2", "T1"))
    wm = load_spec()["tissues"]["wm"]
    t2 = estimate_t2(s1, s2, t1)[np.isclose(t1, wm["T1"])]
    assert np.nanmedian(t2) == pytest.approx(wm["T2"], rel=0.01)
