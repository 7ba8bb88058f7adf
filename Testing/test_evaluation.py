"""``mrsynth evaluate`` end to end on a real MR pair (BraTS-MET-00110 T1 as prediction, T2 as reference)."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from matplotlib.image import imread
from sklearn.metrics import mutual_info_score

from mrsynth.errors import MRSynthError
from mrsynth.evaluation import add_evaluate_parser, evaluate, write_outputs
from mrsynth.figures import orient_for_display, save_figure
from mrsynth.volume_io import to_paper

BRATS = "brats_met_00110/BraTS-MET-00110-000-{}.nii.gz"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mrsynth")
    add_evaluate_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(*argv: str) -> int:
    args = _parser().parse_args(["evaluate", *argv])
    return args.func(args)


def _box_mean(a: np.ndarray, window: tuple[int, int, int]) -> np.ndarray:
    """Box-window mean from a summed-area table over a symmetrically padded copy (independent of scipy)."""
    padded = np.pad(a, [(w // 2, w // 2) for w in window], mode="symmetric")
    table = np.pad(padded.cumsum(0).cumsum(1).cumsum(2), [(1, 0)] * 3)
    total = np.zeros(a.shape)
    for corner in itertools.product((0, 1), repeat=3):
        sl = tuple(slice(w * c, w * c + n) for w, c, n in zip(window, corner, a.shape, strict=True))
        total += (-1) ** (3 - sum(corner)) * table[sl]
    return total / np.prod(window)


def _independent_ssim_map(x: np.ndarray, y: np.ndarray, window: tuple[int, int, int], data_range: float):
    n = np.prod(window)
    mx, my = _box_mean(x, window), _box_mean(y, window)
    vx = (_box_mean(x * x, window) - mx * mx) * n / (n - 1)
    vy = (_box_mean(y * y, window) - my * my) * n / (n - 1)
    cxy = (_box_mean(x * y, window) - mx * my) * n / (n - 1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def _mi_128(x: np.ndarray, y: np.ndarray) -> float:
    def digitise(values: np.ndarray) -> np.ndarray:
        return np.minimum(np.floor((values - values.min()) / (values.max() - values.min()) * 128), 127)

    return mutual_info_score(digitise(x).astype(int), digitise(y).astype(int))


def _paper(image: sitk.Image) -> np.ndarray:
    # BraTS volumes are stored axial, index order x=LR, y=AP, z=SI: the numpy array is already (SI, AP, LR).
    return sitk.GetArrayFromImage(image).astype(np.float64)


def test_cli_agrees_with_independent_mae_mi_ssim_and_writes_everything(shared_data, tmp_path):
    t1_path, t2_path = shared_data / BRATS.format("t1n"), shared_data / BRATS.format("t2w")
    t2 = sitk.ReadImage(str(t2_path))
    brain = sitk.Cast(t2 != 0, sitk.sitkUInt8)
    t1 = sitk.ReadImage(str(t1_path))
    bright = sitk.Cast((t1 > 520) & (brain > 0), sitk.sitkUInt8)  # second region: bright T1 (white matter)
    sitk.WriteImage(brain, str(tmp_path / "brain.nii.gz"))
    sitk.WriteImage(bright, str(tmp_path / "bright.nii.gz"))
    out = tmp_path / "out"
    out.mkdir()

    code = _run(
        str(t1_path),
        str(t2_path),
        "--mask", str(tmp_path / "brain.nii.gz"),
        "--bone-mask", str(tmp_path / "bright.nii.gz"),
        "--maps-dir", str(out / "maps"),
        "--json", str(out / "metrics.json"),
        "--figure", str(out / "figure.png"),
        "--input", str(t1_path),
        "--attribution", "BraTS-METS 2023 (BraTS-MET-00110-000)",
    )  # fmt: skip
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())

    pred, ref = _paper(t1), _paper(t2)
    regions = {"body": _paper(brain) > 0, "bone": _paper(bright) > 0}
    body = regions["body"]
    pred, ref = pred / np.percentile(pred[body], 99), ref / np.percentile(ref[body], 99)
    data_range = ref[body].max() - ref[body].min()
    ssim_values = _independent_ssim_map(pred, ref, (21, 21, 3), data_range)
    for name, region in regions.items():
        got = report["metrics"][name]
        assert got["voxels"] == int(region.sum())
        assert got["mae"] == pytest.approx(np.abs(pred[region] - ref[region]).mean(), abs=1e-3)
        assert got["mi"] == pytest.approx(_mi_128(pred[region], ref[region]), abs=1e-3)
        assert got["ssim"] == pytest.approx(ssim_values[region].mean(), abs=1e-3)
        mse = np.mean((pred[region] - ref[region]) ** 2)
        assert got["psnr"] == pytest.approx(10 * np.log10(data_range**2 / mse), abs=1e-3)
    assert report["metrics"]["bone"]["ssim"] != pytest.approx(report["metrics"]["body"]["ssim"], abs=1e-3)
    assert report["normalisation"]["method"] == "p99"
    assert report["ssim"]["window"] == {"SI": 21, "AP": 21, "LR": 3}
    assert report["mi"] == {"unit": "nats", "bins": 128}

    dssim = sitk.ReadImage(str(out / "maps" / "dssim.nii.gz"))
    np.testing.assert_allclose(_paper(dssim), np.where(body, 1 - ssim_values, 0), atol=1e-5)
    for name in ("relative_error.nii.gz", "dssim.nii.gz", "mask.nii.gz"):
        written = sitk.ReadImage(str(out / "maps" / name))
        assert written.GetSize() == t2.GetSize() and written.GetDirection() == t2.GetDirection()

    figure = out / "figure.png"
    assert figure.read_bytes()[:8] == PNG_SIGNATURE
    pixels = imread(str(figure))
    assert pixels.shape[0] > 500 and pixels.shape[1] > 300 and pixels.std() > 0.05


def _oblique_case(shared_data: Path, seed: int = 0) -> tuple[sitk.Image, sitk.Image, np.ndarray, np.ndarray]:
    """A real T2 crop stored as a sagittal acquisition: index i runs A->P, j runs S->I, k runs R->L."""
    paper = to_paper(sitk.ReadImage(str(shared_data / BRATS.format("t2w"))))[40:100, 60:150, 80:110]
    paper = paper.astype(np.float64)
    pred_paper = paper + np.random.default_rng(seed).normal(0, 40, paper.shape)
    images = []
    for array in (pred_paper, paper):
        image = sitk.GetImageFromArray(np.transpose(array, (2, 0, 1)))  # numpy (k, j, i) = (LR, SI, AP)
        image.SetSpacing((0.9, 1.1, 2.0))
        image.SetOrigin((12.0, -30.0, 45.0))
        image.SetDirection((0, 0, 1, 1, 0, 0, 0, -1, 0))  # columns: i -> +y (P), j -> -z (I), k -> +x (L)
        images.append(image)
    return images[0], images[1], pred_paper, paper


def test_maps_lie_on_a_non_identity_reference_grid_with_values_in_place(shared_data):
    pred, reference, pred_paper, ref_paper = _oblique_case(shared_data)
    mask_paper = ref_paper > 0
    mask = sitk.GetImageFromArray(np.transpose(mask_paper, (2, 0, 1)).astype(np.uint8))
    mask.CopyInformation(reference)
    result = evaluate(pred, reference, mask, normalize="none")

    data_range = ref_paper[mask_paper].max() - ref_paper[mask_paper].min()
    expected_dssim = np.where(mask_paper, 1 - _independent_ssim_map(pred_paper, ref_paper, (21, 21, 3), data_range), 0)
    floor = 0.05 * np.percentile(np.abs(ref_paper[mask_paper]), 99)
    expected_re = np.where(mask_paper, np.abs(pred_paper - ref_paper) / np.maximum(np.abs(ref_paper), floor), 0)
    for image, expected in ((result.dssim_map, expected_dssim), (result.re_map, expected_re)):
        assert image.GetSize() == reference.GetSize()
        assert image.GetSpacing() == reference.GetSpacing()
        assert image.GetOrigin() == reference.GetOrigin()
        assert image.GetDirection() == reference.GetDirection()
        assert image.GetPixelID() == sitk.sitkFloat32
        back_in_paper_order = np.transpose(sitk.GetArrayFromImage(image), (1, 2, 0))
        np.testing.assert_allclose(back_in_paper_order, expected, rtol=1e-4, atol=1e-5)
    assert result.metrics["body"]["mae"] == pytest.approx(np.abs(pred_paper - ref_paper)[mask_paper].mean())
    assert "bone" not in result.metrics


def test_identical_images_and_the_json_report(shared_data, tmp_path):
    _, reference, _, _ = _oblique_case(shared_data)
    result = evaluate(reference, reference)
    body = result.metrics["body"]
    assert body["mae"] == 0.0 and body["ssim"] == pytest.approx(1.0, abs=1e-9)
    assert body["psnr"] == float("inf")
    assert sitk.GetArrayViewFromImage(result.dssim_map).max() == pytest.approx(0.0, abs=1e-9)
    assert result.mask_source.startswith("Otsu")
    written = write_outputs(result, json_path=tmp_path / "m.json")
    report = json.loads(written["json"].read_text())
    assert report["metrics"]["body"]["psnr"] is None  # JSON has no infinity
    assert isinstance(report["metrics"]["body"]["voxels"], int)
    assert report["normalisation"]["p99"].keys() == {"prediction", "reference"}


def test_normalisation_none_reports_raw_errors(shared_data):
    pred, reference, pred_paper, ref_paper = _oblique_case(shared_data)
    raw = evaluate(pred, reference, normalize="none")
    scaled = evaluate(pred, reference, normalize="p99")
    mask = to_paper(raw.mask) > 0  # the Otsu mask of the reference, in paper order
    assert raw.metrics["body"]["mae"] == pytest.approx(np.abs(pred_paper - ref_paper)[mask].mean(), rel=1e-6)
    assert scaled.metrics["body"]["mae"] < raw.metrics["body"]["mae"] / 100
    with pytest.raises(MRSynthError, match="normalisation"):
        evaluate(pred, reference, normalize="z-score")


def test_grid_mismatch_and_empty_masks_are_refused(shared_data):
    pred, reference, _, _ = _oblique_case(shared_data)
    shifted = sitk.Image(pred)
    shifted.SetSpacing((1.0, 1.0, 1.0))
    with pytest.raises(MRSynthError, match="resample"):
        evaluate(shifted, reference)
    empty = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(reference)
    with pytest.raises(MRSynthError, match="mask is empty"):
        evaluate(pred, reference, mask=empty)
    with pytest.raises(MRSynthError, match="bone mask is empty"):
        evaluate(pred, reference, bone_mask=empty)
    with pytest.raises(MRSynthError, match="resample"):
        evaluate(pred, reference, mask=shifted)


def test_orient_for_display_makes_axes_run_towards_superior_posterior_left():
    image = sitk.Image((4, 5, 6), sitk.sitkFloat32)
    image.SetDirection((0, 0, 1, 1, 0, 0, 0, -1, 0))
    coordinates = []
    for axis in range(3):  # x (L), y (P), z (S) of every voxel centre
        values = np.zeros((6, 5, 4), dtype=np.float32)
        for k, j, i in np.ndindex(values.shape):
            values[k, j, i] = image.TransformIndexToPhysicalPoint((i, j, k))[axis]
        coordinate = sitk.GetImageFromArray(values)
        coordinate.CopyInformation(image)
        coordinates.append(orient_for_display(to_paper(coordinate), image))
    x, y, z = coordinates
    assert np.all(np.diff(z, axis=0) > 0)  # SI axis increases towards superior
    assert np.all(np.diff(y, axis=1) > 0)  # AP axis increases towards posterior
    assert np.all(np.diff(x, axis=2) > 0)  # LR axis increases towards left


def test_save_figure_writes_a_png_and_refuses_unknown_formats(tmp_path):
    rng = np.random.default_rng(3)
    panels = {"reference": rng.random((20, 30, 24)), "RE": rng.random((20, 30, 24))}
    path = save_figure(tmp_path / "f.png", panels, spacing=(2.0, 1.0, 1.0), attribution="test data")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]  # no temporary file left behind
    with pytest.raises(MRSynthError, match="extension"):
        save_figure(tmp_path / "f.jpg", panels)
    with pytest.raises(MRSynthError, match="outside"):
        save_figure(tmp_path / "g.png", panels, centre=(20, 0, 0))


def test_help_names_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["evaluate", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--mask", "--bone-mask", "--maps-dir", "--json", "--figure", "--input", "--normalize"):
        assert option in text
    assert "SI AP LR" in text
