"""Tests of the physics simulator: signal equations, geometry, slice integration, noise, labels."""

from __future__ import annotations

import argparse
import cmath
import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from mrsynth.errors import MRSynthError
from mrsynth.simulate import (
    CONTRAST_PROTOCOLS,
    add_simulate_parser,
    bundled_phantom,
    fat_phase,
    load_spec,
    simulate,
    target_volumes,
    tissue_map,
    tissue_names,
)
from mrsynth.volume_io import read_labels, to_paper

SPEC = load_spec()
TISSUES = SPEC["tissues"]
FAT = SPEC["fat_component"]
GE = SPEC["protocols"]["gre_bonemri"]
TSE = {"TSE": SPEC["protocols"]["tse_t1"], "TSE_T2": SPEC["protocols"]["tse_t2"]}
BRAINWEB_LIKE = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0)  # LR along index axis 1
PERMUTED_FLIPPED = (-1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 1.0, 0.0)  # LR along index axis 0, flipped
NO_NOISE = math.inf
BRAIN_LABELS = {"wm": [2, 41], "gm": [3, 42], "csf": [4, 43]}  # FreeSurfer: cerebral WM, cortex, ventricles


def _oblique() -> tuple[float, ...]:
    """BrainWeb-like direction turned by 12 degrees about the SI axis."""
    c, s = math.cos(math.radians(12)), math.sin(math.radians(12))
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return tuple((rotation @ np.array(BRAINWEB_LIKE).reshape(3, 3)).ravel())


def _image(array: np.ndarray, direction=None, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


def _label_for(tissue: str) -> tuple[str, int]:
    """An (atlas, label) pair that the spec assigns to ``tissue``, preferring nonzero labels."""
    extra = SPEC["labels"]["synthseg"]["extra_cerebral"]
    for label, name in extra.items():
        if name == tissue:
            return "synthseg", int(label)
    for label, name in SPEC["labels"]["brainweb_crisp"].items():
        if name == tissue:
            return "brainweb", int(label)
    raise AssertionError(f"no label for {tissue}")


# --- independent signal equations ------------------------------------------------------------------


def _expected_se(tissue: dict, protocol: dict) -> float:
    tr, te, pd, ff = protocol["TR"], protocol["TE"], tissue["PD"], tissue["fat_fraction"]
    water = (1 - math.exp(-tr / tissue["T1"])) * math.exp(-te / tissue["T2"])
    fat = (1 - math.exp(-tr / FAT["T1"])) * math.exp(-te / FAT["T2"])
    return pd * ((1 - ff) * water + ff * fat)


def _expected_ge(tissue: dict, te: float) -> float:
    alpha, tr = math.radians(GE["flip_deg"]), GE["TR"]

    def steady(t1: float, t2star: float) -> float:
        e1 = math.exp(-tr / t1)
        return tissue["PD"] * math.sin(alpha) * (1 - e1) / (1 - math.cos(alpha) * e1) * math.exp(-te / t2star)

    shift_hz = -3.4 * 63.87
    phase = cmath.exp(2j * math.pi * shift_hz * te / 1000.0)
    ff = tissue["fat_fraction"]
    return abs((1 - ff) * steady(tissue["T1"], tissue["T2star"]) + ff * steady(FAT["T1"], FAT["T2star"]) * phase)


def _block(label: int, shape=(9, 9, 12)) -> sitk.Image:
    """A 5 x 5 x 8 block of one label in background: its centre voxel lies beyond the PSF's reach."""
    array = np.zeros(shape, dtype=np.int16)
    array[2:7, 2:7, 2:10] = label
    return _image(array)  # identity direction: numpy order is already (SI, AP, LR)


@pytest.mark.parametrize("tissue", list(TISSUES))
def test_every_tissue_signal_follows_the_equations(tissue: str) -> None:
    atlas, label = _label_for(tissue)
    out = simulate(_block(label), atlas, snr=NO_NOISE)
    centre = (4, 4, 6)
    props = TISSUES[tissue]
    for echo, te in zip(GE["echo_names"], GE["TE"], strict=True):
        value = sitk.GetArrayViewFromImage(out[f"GE_{echo}"])[centre]
        assert value == pytest.approx(_expected_ge(props, te), rel=1e-5, abs=1e-7), echo
    for name, protocol in TSE.items():
        expected = _expected_se(props, protocol)
        assert sitk.GetArrayViewFromImage(out[f"{name}_HR"])[centre] == pytest.approx(expected, rel=1e-5, abs=1e-7)
        # thick slice 1 integrates HR slices 4..7, all inside the block.
        thick = sitk.GetArrayViewFromImage(out[f"{name}_thick"])[4, 4, 1]
        assert thick == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert sitk.GetArrayViewFromImage(out["bone_mask"])[centre] == (tissue in SPEC["bone_tissues"])
    assert sitk.GetArrayViewFromImage(out["head_mask"])[centre] == 1


def test_fat_phase_is_almost_opposed_then_almost_in_phase() -> None:
    for te in GE["TE"]:
        assert fat_phase(te, SPEC) == pytest.approx(cmath.exp(2j * math.pi * -3.4 * 63.87 * te / 1000.0), abs=1e-12)
    aop, aip = (cmath.phase(fat_phase(te, SPEC)) for te in GE["TE"])
    assert math.cos(aop) < -0.9 and math.cos(aip) > 0.8


def test_marrow_mix_is_darker_at_opposed_phase() -> None:
    marrow = TISSUES["marrow"]
    assert marrow["fat_fraction"] == 0.5
    out = simulate(_block(_label_for("marrow")[1]), "synthseg", snr=NO_NOISE)
    aop, aip = (sitk.GetArrayViewFromImage(out[f"GE_{e}"])[4, 4, 6] for e in GE["echo_names"])
    assert aop < 0.5 * aip
    assert aop == pytest.approx(_expected_ge(marrow, GE["TE"][0]), rel=1e-5)


def test_fat_water_border_cancels_at_opposed_phase_only() -> None:
    array = np.full((6, 12, 8), 3, dtype=np.uint8)  # wm
    array[:, 6:, :] = 4  # fat beyond AP index 6
    out = simulate(_image(array), "brainweb", snr=NO_NOISE)
    aop, aip = (sitk.GetArrayFromImage(out[f"GE_{e}"])[:, :, :] for e in GE["echo_names"])
    border, pure = slice(5, 7), np.r_[0:3, 9:12]
    assert np.all(aop[:, border] < aip[:, border])
    assert np.all(aop[:, pure] >= aip[:, pure])


# --- thick slices ----------------------------------------------------------------------------------


def _lr_index_axis(direction: tuple[float, ...]) -> int:
    """Independent of the library: the index axis whose direction cosine has the largest x (L-R) part."""
    return int(np.argmax(np.abs(np.array(direction).reshape(3, 3)[0])))


@pytest.mark.parametrize("direction", [BRAINWEB_LIKE, PERMUTED_FLIPPED, _oblique()], ids=["brainweb", "perm", "obl"])
def test_thick_slice_centres_are_the_mean_of_their_hr_slices(direction) -> None:
    rng = np.random.default_rng(1)
    size = [8, 10, 6]
    axis = _lr_index_axis(direction)
    size[axis] = 12
    labels = rng.integers(1, 10, size=size[::-1]).astype(np.uint8)
    image = _image(labels, direction, spacing=(0.9, 1.1, 1.3), origin=(10.0, -20.0, 30.0))
    out = simulate(image, "brainweb", snr=NO_NOISE)
    hr, thick = out["TSE_HR"], out["TSE_thick"]
    assert thick.GetDirection() == pytest.approx(hr.GetDirection())
    assert thick.GetSize()[axis] == 3
    assert thick.GetSpacing()[axis] == pytest.approx(4 * hr.GetSpacing()[axis])
    for j in range(3):
        index = [2, 3, 1]
        index[axis] = j
        centre = np.array(thick.TransformIndexToPhysicalPoint(index))
        members = []
        for k in range(4):
            index[axis] = 4 * j + k
            members.append(hr.TransformIndexToPhysicalPoint(index))
        np.testing.assert_allclose(centre, np.mean(members, axis=0), atol=1e-9)


def test_thick_slice_is_the_profile_weighted_sum_along_lr() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 10, size=(6, 16, 7)).astype(np.uint8)  # numpy axis 1 = index axis 1 = LR
    profile = [0.1, 0.2, 0.3, 0.4]
    out = simulate(_image(labels, BRAINWEB_LIKE), "brainweb", snr=NO_NOISE, slice_profile=profile)
    for name in TSE:
        hr = sitk.GetArrayFromImage(out[f"{name}_HR"]).astype(np.float64)
        thick = sitk.GetArrayFromImage(out[f"{name}_thick"])
        assert thick.shape == (6, 4, 7)
        for j in range(4):
            expected = sum(w * hr[:, 4 * j + k, :] for k, w in enumerate(profile))
            np.testing.assert_allclose(thick[:, j, :], expected, rtol=1e-5, atol=1e-7)


def test_lr_length_not_a_multiple_of_the_factor_is_cropped_with_a_warning(tmp_path: Path) -> None:
    labels = np.full((5, 14, 6), 2, dtype=np.uint8)
    image = _image(labels, BRAINWEB_LIKE, origin=(3.0, 4.0, 5.0))
    with pytest.warns(UserWarning, match="last 2 high-resolution slice"):
        out = simulate(image, "brainweb", tmp_path / "sim", snr=NO_NOISE)
    for name, result in out.items():
        expected_lr = 3 if name.endswith("_thick") else 12
        assert result.GetSize()[1] == expected_lr, name
    assert out["TSE_HR"].GetOrigin() == pytest.approx(image.GetOrigin())
    assert json.loads((tmp_path / "sim" / "simulation.json").read_text())["cropped_lr_slices"] == 2


def test_slice_factor_alone_gets_a_uniform_profile() -> None:
    labels = np.random.default_rng(3).integers(1, 10, size=(4, 5, 6)).astype(np.uint8)
    out = simulate(_image(labels), "brainweb", snr=NO_NOISE, slice_factor=2)
    hr = sitk.GetArrayFromImage(out["TSE_T2_HR"])
    thick = sitk.GetArrayFromImage(out["TSE_T2_thick"])
    np.testing.assert_allclose(thick, 0.5 * (hr[..., 0::2] + hr[..., 1::2]), rtol=1e-5)
    assert out["TSE_T2_thick"].GetSpacing() == pytest.approx((2.0, 1.0, 1.0))
    assert out["TSE_T2_thick"].GetOrigin() == pytest.approx((0.5, 0.0, 0.0))


@pytest.mark.parametrize(
    ("factor", "profile"), [(4, [0.5, 0.5]), (None, [0.2, 0.2, 0.2, 0.2]), (None, [1.5, -0.5]), (0, None)]
)
def test_bad_slice_settings_are_refused(factor, profile) -> None:
    with pytest.raises(MRSynthError, match="slice"):
        simulate(_block(2), "brainweb", slice_factor=factor, slice_profile=profile)


# --- cropping to the head --------------------------------------------------------------------------


def test_crop_to_head_keeps_physical_positions() -> None:
    labels = np.zeros((30, 36, 32), dtype=np.uint8)  # numpy (z, y, x); LR = index 1 = numpy axis 1
    labels[9:17, 11:20, 12:21] = 2
    labels[12, 14, 15] = 5
    image = _image(labels, BRAINWEB_LIKE, spacing=(0.8, 1.2, 1.5), origin=(7.0, -3.0, 2.0))
    full = simulate(image, "brainweb", snr=NO_NOISE)
    cropped = simulate(image, "brainweb", snr=NO_NOISE, crop_to_head=True)
    head = cropped["head_mask"]
    assert head.GetSize()[1] % 4 == 0
    assert head.GetSize()[0] == (21 - 12) + 8 and head.GetSize()[2] == (17 - 9) + 8
    for name in ("TSE_HR", "GE_aOP", "head_mask", "bone_mask"):
        resampled = sitk.Resample(full[name], cropped[name], sitk.Transform(), sitk.sitkNearestNeighbor)
        np.testing.assert_allclose(
            sitk.GetArrayFromImage(cropped[name]), sitk.GetArrayFromImage(resampled), atol=1e-6, err_msg=name
        )
    assert sitk.GetArrayViewFromImage(head).sum() == np.count_nonzero(labels)


# --- noise -----------------------------------------------------------------------------------------


def test_rician_noise_level_in_the_background(tmp_path: Path) -> None:
    labels = np.zeros((40, 40, 40), dtype=np.uint8)
    labels[14:26, 14:26, 14:26] = 1  # csf
    snr = 20.0
    out = simulate(_image(labels), "brainweb", tmp_path / "sim", snr=snr, seed=5)
    sigmas = json.loads((tmp_path / "sim" / "simulation.json").read_text())["noise_sigma"]
    csf = TISSUES["csf"]
    expected = {f"GE_{e}": _expected_ge(csf, te) / snr for e, te in zip(GE["echo_names"], GE["TE"], strict=True)}
    expected.update({f"{n}_thick": _expected_se(csf, p) / snr for n, p in TSE.items()})
    for name, sigma in expected.items():
        assert sigmas[name] == pytest.approx(sigma, rel=1e-4), name
        magnitude = sitk.GetArrayFromImage(out[name])
        background = np.concatenate([magnitude[:10].ravel(), magnitude[30:].ravel()])  # far from the block
        assert background.std() == pytest.approx(sigma * math.sqrt((4 - math.pi) / 2), rel=0.1), name
        assert background.mean() == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.1), name


def test_noise_sigma_is_the_99th_percentile_in_the_head_over_the_snr(tmp_path: Path) -> None:
    labels = np.zeros((12, 14, 16), dtype=np.uint8)
    labels[2:10, 2:12, 2:14] = np.random.default_rng(6).integers(1, 10, size=(8, 10, 12))
    image, snr = _image(labels), 25.0
    clean = simulate(image, "brainweb", snr=NO_NOISE)
    simulate(image, "brainweb", tmp_path / "sim", snr=snr)
    sigmas = json.loads((tmp_path / "sim" / "simulation.json").read_text())["noise_sigma"]
    head = sitk.GetArrayFromImage(clean["head_mask"]).astype(bool)
    thick_head = head.reshape(12, 14, 4, 4).any(axis=3)  # slabs holding any head voxel
    for name in sigmas:
        mask = thick_head if name.endswith("_thick") else head
        expected = np.percentile(sitk.GetArrayFromImage(clean[name])[mask], 99) / snr
        assert sigmas[name] == pytest.approx(expected, rel=1e-5), name


def test_the_seed_makes_noise_reproducible() -> None:
    image = _block(3)
    first, again, other = (simulate(image, "brainweb", seed=s) for s in (7, 7, 8))
    for name in ("GE_aOP", "TSE_thick", "TSE_T2_thick"):
        a, b, c = (sitk.GetArrayFromImage(r[name]) for r in (first, again, other))
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


# --- labels ----------------------------------------------------------------------------------------


def _expected_synthseg(label: int) -> str:
    table = SPEC["labels"]["synthseg"]
    if label == 0:
        return "air"
    if label >= 500:
        return table["extra_cerebral"][str(label)]
    return "csf" if label in table["csf"] else "wm" if label in table["wm"] else "gm"


def test_synthseg_labels_of_a_real_map_get_the_spec_tissues(shared_data: Path) -> None:
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data / "synthseg_labels" / "training_seg_01.nii.gz")))
    tissues = tissue_map(labels, "synthseg", SPEC)
    names = tissue_names(SPEC)
    pairs = np.unique(labels.astype(np.int64) * 64 + tissues)
    found = {int(p // 64): names[int(p % 64)] for p in pairs}
    assert len(found) == len(pairs), "a label was mapped to two tissues"
    assert found == {label: _expected_synthseg(label) for label in found}
    assert {found[502], found[3], found[2], found[24], found[516], found[515]} == {
        "air",
        "gm",
        "wm",
        "csf",
        "marrow",
        "skull",
    }


def test_synthseg_labels_in_uint8_maps_do_not_overflow() -> None:
    names = [tissue_names(SPEC)[t] for t in tissue_map(np.array([0, 254, 255, 4], np.uint8), "synthseg", SPEC)]
    assert names == ["air", "gm", "gm", "csf"]


def test_brainweb_labels_get_the_spec_tissues() -> None:
    labels = np.arange(10, dtype=np.uint8).reshape(1, 1, 10)
    names = [tissue_names(SPEC)[t] for t in tissue_map(labels, "brainweb", SPEC).ravel()]
    assert names == [SPEC["labels"]["brainweb_crisp"][str(i)] for i in range(10)]


@pytest.mark.parametrize(
    ("atlas", "labels", "named"),
    [
        ("synthseg", [0, 2, 513, 600, 507], "513, 600"),
        ("brainweb", [0, 3, 10, 255], "10, 255"),
        ("synthseg", [-1], "-1"),
    ],
)
def test_unknown_labels_are_named(atlas: str, labels: list[int], named: str) -> None:
    with pytest.raises(MRSynthError, match=named):
        tissue_map(np.array(labels, dtype=np.int32), atlas, SPEC)


def test_non_integer_labels_and_unknown_atlas_are_refused() -> None:
    with pytest.raises(MRSynthError, match="non-integer"):
        tissue_map(np.array([0.0, 2.5]), "synthseg", SPEC)
    with pytest.raises(MRSynthError, match="unknown atlas"):
        simulate(_block(2), "freesurfer")


# --- resources and files ---------------------------------------------------------------------------


def test_packaged_spec_is_the_shared_spec(shared_data: Path) -> None:
    packaged = Path(__file__).resolve().parents[1] / "mrsynth" / "resources" / "tissues_1.5T.json"
    assert packaged.read_bytes() == (shared_data / "simulation" / "tissues_1.5T.json").read_bytes()


def test_bundled_phantom_equals_the_shared_file(shared_data: Path) -> None:
    shared = sitk.ReadImage(str(shared_data / "brainweb" / "brainweb_crisp_labels_from_MRiLab.nii.gz"))
    phantom = bundled_phantom()
    assert phantom.GetPixelID() == shared.GetPixelID()
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(phantom), sitk.GetArrayViewFromImage(shared))
    assert phantom.GetSpacing() == shared.GetSpacing()
    assert phantom.GetOrigin() == shared.GetOrigin()
    assert phantom.GetDirection() == shared.GetDirection()


def test_cli_writes_every_output_with_its_geometry(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    labels = np.zeros((10, 16, 12), dtype=np.uint8)
    labels[2:8, 3:13, 2:10] = 7
    source = tmp_path / "labels.nii.gz"
    sitk.WriteImage(_image(labels, BRAINWEB_LIKE, origin=(1.0, 2.0, 3.0)), str(source))
    parser = argparse.ArgumentParser(prog="mrsynth")
    add_simulate_parser(parser.add_subparsers())
    out_dir = tmp_path / "out"
    args = parser.parse_args(
        ["simulate", str(source), "--atlas", "brainweb", "--out-dir", str(out_dir), "--seed", "4", "--snr", "15"]
    )
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    names = ["GE_aOP", "GE_aIP", "TSE_thick", "TSE_T2_thick", "TSE_HR", "TSE_T2_HR", "head_mask", "bone_mask"]
    for name in names:
        written = sitk.ReadImage(str(out_dir / f"{name}.nii.gz"))
        assert written.GetSize()[1] == (4 if name.endswith("_thick") else 16)
        assert written.GetPixelID() == (sitk.sitkUInt8 if name.endswith("mask") else sitk.sitkFloat32)
        assert f"{name}.nii.gz" in printed
    params = json.loads((out_dir / "simulation.json").read_text())
    assert params["seed"] == 4 and params["snr"]["tse_t2"] == 15 and params["source"] == str(source.resolve())
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out_dir / "bone_mask.nii.gz"))), labels == 7)
    for contrast in CONTRAST_PROTOCOLS:  # every synthesizable contrast names a thick target and a truth written here
        thick, truth = target_volumes(contrast)
        assert sitk.ReadImage(str(out_dir / f"{thick}.nii.gz")).GetSize()[1] == 4
        assert sitk.ReadImage(str(out_dir / f"{truth}.nii.gz")).GetSize()[1] == 16
    assert target_volumes("TSE_T2w") == ("TSE_T2_thick", "TSE_T2_HR")
    with pytest.raises(MRSynthError, match="simulates TSE_T1w, TSE_T2w"):
        target_volumes("FLAIR")


def test_cli_help_and_missing_parent_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser(prog="mrsynth")
    add_simulate_parser(parser.add_subparsers())
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["simulate", "--help"])
    assert exit_info.value.code == 0
    assert "--crop-to-head" in capsys.readouterr().out
    with pytest.raises(MRSynthError, match="parent folder"):
        simulate(_block(2), "brainweb", tmp_path / "missing" / "out")


def test_a_real_synthseg_head_gives_the_expected_contrasts(shared_data: Path, tmp_path: Path) -> None:
    labels = shared_data / "synthseg_labels" / "training_seg_01.nii.gz"
    out = simulate(labels, "synthseg", tmp_path, crop_to_head=True, seed=3)
    assert out["TSE_thick"].GetSize()[0] * 4 == out["TSE_HR"].GetSize()[0]
    seg = to_paper(sitk.Resample(read_labels(labels), out["TSE_HR"], sitk.Transform(), sitk.sitkNearestNeighbor))
    mean = {
        name: {t: to_paper(out[name])[np.isin(seg, ids)].mean() for t, ids in BRAIN_LABELS.items()}
        for name in ("TSE_HR", "GE_aIP", "TSE_T2_HR")
    }
    # T1w TSE and GE: white matter brighter than grey matter brighter than CSF; T2w TSE: the reverse.
    for name in ("TSE_HR", "GE_aIP"):
        assert mean[name]["wm"] > mean[name]["gm"] > mean[name]["csf"], (name, mean[name])
    assert mean["TSE_T2_HR"]["csf"] > mean["TSE_T2_HR"]["gm"] > mean["TSE_T2_HR"]["wm"], mean["TSE_T2_HR"]
