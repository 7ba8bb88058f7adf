"""Preparation of a real training case: grids of both approaches, -1 marking, normalisation, bad input.

The inputs are real co-registered volumes (TCGA DU-7294 on a 1 mm grid): the T2 averaged over
4 mm along LR stands in for the thick-slice TSE; T1c and T1 stand in for the two GE echoes, moved
by a known translation so that registration has work to do.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from mrsynth import cli
from mrsynth.data import Case
from mrsynth.grids import thick_grid
from mrsynth.prepare import PreparedCase, intermediate_grid, prepare_case, write_case
from mrsynth.volume_io import paper_spacing, same_grid, to_paper

SHIFT_LR = 12.0  # mm: pushes the GE out of the TSE's field of view on one LR side


def _read(shared: Path, name: str) -> sitk.Image:
    path = shared / "tcga_brats_space" / f"TCGA-DU-7294_{name}.nii.gz"
    return sitk.ReadImage(str(path), sitk.sitkFloat32)[60:180, 50:190, 50:90]  # 120 x 140 x 40 mm


@pytest.fixture(scope="module")
def inputs() -> dict[str, sitk.Image]:
    from conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data folder {SHARED_DATA} is absent (it sits beside the repository in CI)")
    t1, t1c, t2 = (_read(SHARED_DATA, name) for name in ("t1", "t1c", "t2"))
    shift = sitk.TranslationTransform(3, (SHIFT_LR, -1.5, 1.0))  # x is L-R in these volumes
    aop, aip = (sitk.Resample(image, image, shift, sitk.sitkBSpline, 0.0) for image in (t1c, t1))
    brain = sitk.GetArrayFromImage(aip) > 0
    shell = sitk.GetImageFromArray((brain & ~ndimage.binary_erosion(brain, iterations=3)).astype(np.uint8))
    shell.CopyInformation(aip)
    return {"aop": aop, "aip": aip, "tse": sitk.BinShrink(t2, [4, 1, 1]), "bone": shell}


@pytest.fixture(scope="module")
def high(inputs) -> PreparedCase:
    return prepare_case(inputs["aop"], inputs["aip"], inputs["tse"], approach="high-to-low", preset="translation")


def test_high_to_low_puts_the_ge_on_the_intermediate_grid_and_keeps_the_tse(inputs, high):
    tse, ge = inputs["tse"], high.volumes["GE_aIP"]
    assert same_grid(ge, intermediate_grid(tse)) and same_grid(thick_grid(ge), tse)
    assert paper_spacing(ge) == (1.0, 1.0, 1.0) and paper_spacing(tse) == (1.0, 1.0, 4.0)
    # The TSE is never resampled: only divided by its 99th percentile.
    kept = to_paper(high.volumes["TSE_thick"]) * high.info["p99"]["TSE_thick"]
    assert np.allclose(kept, to_paper(tse), rtol=1e-5, atol=1e-3)
    translation = [float(v) for v in high.transform.maps[0]["TransformParameters"]]
    assert np.allclose(translation, [-SHIFT_LR, 1.5, -1.0], atol=0.6)


def test_voxels_pushed_outside_are_minus_one_and_never_sampled(high):
    ge = to_paper(high.volumes["GE_aOP"])
    outside = ge == -1.0
    sampling = to_paper(high.volumes["sampling_mask"]) > 0
    assert outside.sum() == high.info["outside_voxels"] > 0
    assert not (outside & sampling).any() and not (outside & (to_paper(high.volumes["head_mask"]) > 0)).any()
    assert ge[~outside].min() >= 0.0  # negative B-spline overshoot set to 0
    # The GE moved 12 mm towards +x (patient left; x is the LR axis, last in paper order), so the first
    # ~12 one-millimetre LR slices have no GE; elsewhere only the 1-2 mm shifts along SI and AP show.
    columns = outside.mean(axis=(0, 1))
    assert (columns[:10] == 1).all() and (columns[14:] < 0.1).all()
    assert np.isclose(np.percentile(ge[sampling & ~outside], 99), 1.0, atol=0.02)


def test_training_reads_the_prepared_folder(high, tmp_path):
    folder = write_case(high, tmp_path / "case")
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        ["GE_aOP.nii.gz", "GE_aIP.nii.gz", "TSE_thick.nii.gz", "head_mask.nii.gz", "sampling_mask.nii.gz",
         "prepare.json", "transform"]
    )  # fmt: skip
    case = Case.load(folder, ["GE_aOP", "GE_aIP"], "TSE_thick", "head_mask", (32, 32, 16))
    marked = (to_paper(high.volumes["GE_aOP"]) == -1).ravel()
    assert not marked[case.candidates].any() and case.inputs.min() >= 0


def test_low_to_low_with_a_bone_mask_uses_the_tse_grid_and_the_rigidity_preset(inputs):
    case = prepare_case(inputs["aop"], inputs["aip"], inputs["tse"], approach="low-to-low", bone_mask=inputs["bone"])
    assert case.info["preset"] == "bspline-mi-rigidity"
    for name in ("GE_aOP", "GE_aIP", "head_mask", "sampling_mask", "bone_mask"):
        assert same_grid(case.volumes[name], inputs["tse"]), name
    bone = to_paper(case.volumes["bone_mask"])
    assert set(np.unique(bone)) <= {0, 1} and bone.sum() > 0


def _write(images: dict[str, sitk.Image], folder: Path) -> dict[str, str]:
    paths = {}
    for name, image in images.items():
        paths[name] = str(folder / f"{name}.nii.gz")
        sitk.WriteImage(image, paths[name])
    return paths


@pytest.mark.parametrize(
    "case, message",
    [
        ("labels as bone mask", r"--bone-mask .* is not binary"),
        ("bone mask on the TSE grid", r"--bone-mask .* lies on another grid"),
        ("echoes on two grids", r"--ge-aop .* and --ge-aip .* lie on different grids"),
        ("out-dir not empty", r"--out-dir .* exists and is not empty"),
        ("no overlap", r"TSE and GE aIP do not overlap"),
    ],
)
def test_bad_input_gives_one_clear_line_and_no_case_folder(inputs, tmp_path, capsys, case, message):
    images = {"aop": inputs["aop"], "aip": inputs["aip"], "tse": inputs["tse"]}
    out = tmp_path / "case"
    extra: list[str] = []
    if case == "labels as bone mask":
        images["bone"] = inputs["bone"] * 2
    elif case == "bone mask on the TSE grid":
        images["bone"] = sitk.Cast(inputs["tse"] > 0, sitk.sitkUInt8)
    elif case == "echoes on two grids":
        images["aop"] = inputs["aop"][:-4, :, :]
    elif case == "out-dir not empty":
        out.mkdir()
        (out / "keep.txt").write_text("x")
    elif case == "no overlap":
        far = sitk.Image(inputs["tse"])
        far.SetOrigin(tuple(o + 500.0 for o in far.GetOrigin()))
        images["tse"] = far
    paths = _write(images, tmp_path)
    if "bone" in paths:
        extra = ["--bone-mask", paths["bone"]]
    argv = ["prepare", "--ge-aop", paths["aop"], "--ge-aip", paths["aip"], "--tse", paths["tse"]]
    code = cli.main([*argv, "--approach", "high-to-low", "--out-dir", str(out), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("mrsynth prepare: error: ") and re.search(message, err[-1]), err
    if case != "out-dir not empty":
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]
