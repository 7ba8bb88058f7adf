"""``mrsynth t2-map``: the DESS T2 map a user writes from (super-resolved) echoes, on simulated echoes
whose T2 is known from the tissue table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from mrsynth.cli import main
from mrsynth.dess import DESS_PROTOCOL, simulate_dess
from mrsynth.errors import MRSynthError
from mrsynth.simulate import bundled_phantom, load_spec
from mrsynth.t2_map import DessProtocol, t2_map
from mrsynth.volume_io import to_paper

PROTOCOL = DessProtocol(DESS_PROTOCOL["TR"], DESS_PROTOCOL["TE"], DESS_PROTOCOL["flip_deg"])


@pytest.fixture(scope="module")
def echoes() -> dict:
    """Noise-free DESS echoes of a block of the BrainWeb phantom, as images on one 1 mm grid."""
    spec = load_spec()
    labels = to_paper(bundled_phantom())[60:90, 60:100, 60:100].astype(np.int64)
    dess = simulate_dess(labels, "brainweb", spec)

    def image(array: np.ndarray) -> sitk.Image:
        out = sitk.GetImageFromArray(np.asarray(array, dtype=np.float32))
        out.SetSpacing((1.0, 1.0, 1.0))
        return out

    return {
        "S1": image(dess["S1"]), "S2": image(dess["S2"]), "T1": image(dess["T1"]), "tissues": dess["tissues"],
        "names": list(spec["tissues"]), "spec": spec,
    }  # fmt: skip


def _tissue(echoes: dict, name: str) -> np.ndarray:
    return echoes["tissues"] == echoes["names"].index(name)


def _core(echoes: dict, name: str) -> np.ndarray:
    """A tissue's voxels two or more voxels from any other tissue, beyond the simulator's point-spread."""
    return ndimage.binary_erosion(_tissue(echoes, name), iterations=2)


def test_the_map_gives_each_tissue_its_table_t2_and_zero_where_no_t2_exists(echoes):
    result = t2_map(echoes["S1"], echoes["S2"], PROTOCOL, echoes["T1"])
    t2 = sitk.GetArrayFromImage(result.image)
    assert result.image.GetSpacing() == echoes["S1"].GetSpacing() and t2.dtype == np.float32
    for name in ("wm", "gm", "csf"):
        assert _core(echoes, name).sum() > 20
        assert np.median(t2[_core(echoes, name)]) == pytest.approx(echoes["spec"]["tissues"][name]["T2"], rel=0.01)
    assert np.all(np.isfinite(t2)) and result.valid == int((t2 > 0).sum()) == t2.size
    # an S2 brighter than S1 allows no T2: 0 in the map, not NaN; nowhere a T2 (echoes swapped) is an error
    half = sitk.GetArrayFromImage(echoes["S2"])
    half[: half.shape[0] // 2] = 2 * sitk.GetArrayFromImage(echoes["S1"])[: half.shape[0] // 2]
    partial = sitk.GetImageFromArray(half)
    partial.CopyInformation(echoes["S2"])
    upper = sitk.GetArrayFromImage(t2_map(echoes["S1"], partial, PROTOCOL, echoes["T1"]).image)
    assert not upper[: half.shape[0] // 2].any() and upper[half.shape[0] // 2 :].all()
    with pytest.raises(MRSynthError, match="check that S1 is the first"):
        t2_map(echoes["S2"], echoes["S1"], PROTOCOL, echoes["T1"])


def test_echoes_in_any_common_unit_give_the_same_map_and_one_assumed_t1_is_exact_where_it_is_the_tissues(echoes):
    wm = _tissue(echoes, "wm")
    exact = sitk.GetArrayFromImage(t2_map(echoes["S1"], echoes["S2"], PROTOCOL, echoes["T1"]).image)
    scaled = t2_map(echoes["S1"] * 37.5, echoes["S2"] * 37.5, PROTOCOL, echoes["T1"])
    np.testing.assert_allclose(sitk.GetArrayFromImage(scaled.image), exact, rtol=1e-5, atol=1e-3)
    assumed = sitk.GetArrayFromImage(t2_map(echoes["S1"], echoes["S2"], PROTOCOL, 500.0).image)  # the WM T1
    np.testing.assert_allclose(assumed[wm], exact[wm], rtol=1e-4)
    # an assumed T1 far from CSF's (2569 ms) gets CSF's T2 wrong: the reason nothing is assumed by default
    csf = _core(echoes, "csf")
    assert abs(np.median(assumed[csf]) / np.median(exact[csf]) - 1) > 0.1


def test_the_mask_limits_the_map(echoes):
    mask = sitk.Cast(sitk.GetImageFromArray(_tissue(echoes, "wm").astype(np.uint8)), sitk.sitkUInt8)
    mask.CopyInformation(echoes["S1"])
    result = t2_map(echoes["S1"], echoes["S2"], PROTOCOL, echoes["T1"], mask)
    t2 = sitk.GetArrayFromImage(result.image)
    assert np.all(t2[~_tissue(echoes, "wm")] == 0) and result.considered == int(_tissue(echoes, "wm").sum())


@pytest.mark.parametrize(
    ("settings", "message"),
    [((7.0, 23.0, 20.0), "need 0 < TE < TR"), ((23.0, 7.0, 0.0), "flip angle 0.0"), ((23.0, 7.0, 200.0), "between 0")],
)
def test_impossible_sequence_settings_are_refused(settings, message):
    with pytest.raises(MRSynthError, match=message):
        DessProtocol(*settings)


def test_bad_t1_and_grids_are_refused(echoes):
    with pytest.raises(MRSynthError, match="assumed T1 in ms"):
        t2_map(echoes["S1"], echoes["S2"], PROTOCOL, 0.0)
    with pytest.raises(MRSynthError, match="T1 map has zero"):
        t2_map(echoes["S1"], echoes["S2"], PROTOCOL, echoes["T1"] * 0)
    shifted = sitk.Image(echoes["S2"])
    shifted.SetSpacing((1.0, 1.0, 2.0))
    with pytest.raises(MRSynthError, match="different grids"):
        t2_map(echoes["S1"], shifted, PROTOCOL, 800.0)


def test_cli_writes_the_map_and_refuses_a_missing_t1(echoes, tmp_path: Path, capsys):
    paths = {}
    for name in ("S1", "S2", "T1"):
        paths[name] = str(tmp_path / f"{name}.nii.gz")
        sitk.WriteImage(echoes[name], paths[name])
    out = tmp_path / "t2.nii.gz"
    settings = ["--tr", "23", "--te", "7", "--flip", "20"]
    assert main(["t2-map", paths["S1"], paths["S2"], *settings, "--t1-map", paths["T1"], "--output", str(out)]) == 0
    assert "T2 found in" in capsys.readouterr().out
    expected = sitk.GetArrayFromImage(t2_map(echoes["S1"], echoes["S2"], PROTOCOL, echoes["T1"]).image)
    np.testing.assert_allclose(sitk.GetArrayFromImage(sitk.ReadImage(str(out))), expected)
    with pytest.raises(SystemExit):  # argparse: one of --t1 and --t1-map is required
        main(["t2-map", paths["S1"], paths["S2"], *settings, "--output", str(tmp_path / "x.nii.gz")])
    assert not (tmp_path / "x.nii.gz").exists()
