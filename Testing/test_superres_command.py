"""mrsynth superres: thick-slice volumes -> thin grid, in the inputs' units, via the inference engine."""

import warnings

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from mrsynth.checkpoint import ModelInfo, load_checkpoint, save_checkpoint
from mrsynth.cli import main
from mrsynth.errors import MRSynthError
from mrsynth.networks import MRSR
from mrsynth.superres import simulate_thick, superresolve, superresolve_arrays
from mrsynth.thick_slices import to_thin
from mrsynth.volume_io import to_paper


def _model(path, in_channels=1, trained_axis="any"):
    torch.manual_seed(0)
    net = MRSR(in_channels, in_channels, depth=3, width=4)
    info = ModelInfo(
        name="tiny-sr", architecture="MRSR", arguments={"in_channels": in_channels, "out_channels": in_channels,
        "depth": 3, "width": 4}, inputs=["any"] * in_channels, output="any", voxel_size=[1.0, 1.0, 1.0],
        patch=[32, 32, 32], stride=[16, 16, 16], approach="residual-on-interpolation", task="super-resolution",
        slice_factor=4, slice_axis=trained_axis,
    )  # fmt: skip
    return save_checkpoint(path, net, info)


def _thin_head():
    array = np.zeros((24, 28, 32), dtype=np.float32)
    array[4:20, 5:23, 6:26] = 100.0
    array[8:14, 10:16, 9:20] = 180.0
    image = sitk.GetImageFromArray(array)
    image.SetOrigin((1.0, 2.0, 3.0))
    return image


def test_untrained_model_returns_the_cubic_interpolation_on_the_thin_grid(tmp_path):
    model = load_checkpoint(_model(tmp_path / "m.pt"))
    thin = _thin_head()
    thick = simulate_thick(thin, 4, "SI")  # numpy axis 0 of an identity-direction image runs along SI
    assert thick.GetSize() == (32, 28, 6) and thick.GetSpacing()[2] == 4.0
    result = superresolve(model, [thick])
    out = result.outputs[0]
    assert result.slice_axis == 0
    assert out.GetSize() == thin.GetSize()
    np.testing.assert_allclose(out.GetOrigin(), thin.GetOrigin(), atol=1e-6)
    expected = to_thin(to_paper(thick), 0, 4)
    np.testing.assert_allclose(to_paper(out), expected, rtol=1e-4, atol=1e-3)  # back in the input's units


def test_cli_writes_one_output_per_input_and_refuses_wrong_models(tmp_path, capsys):
    path = _model(tmp_path / "m.pt")
    sitk.WriteImage(_thin_head(), str(tmp_path / "thin.nii.gz"))
    args = ["superres", str(path), str(tmp_path / "thin.nii.gz"), "--simulate-thick", "--slice-axis", "LR"]
    assert main([*args, "--output", str(tmp_path / "sr.nii.gz"), "--interpolated", str(tmp_path / "tci.nii.gz")]) == 0
    assert sitk.ReadImage(str(tmp_path / "sr.nii.gz")).GetSize() == (32, 28, 24)
    assert main([*args, "--output", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz")]) == 2
    assert "one per input" in capsys.readouterr().err
    only_si = _model(tmp_path / "si.pt", trained_axis="SI")
    assert main(["superres", str(only_si), *args[2:], "--output", str(tmp_path / "c.nii.gz")]) == 2
    assert "trained for thick slices along SI" in capsys.readouterr().err
    assert not (tmp_path / "c.nii.gz").exists()


def test_cli_runs_the_network_in_bfloat16_on_request(tmp_path):
    model = load_checkpoint(_model(tmp_path / "m.pt"))
    with torch.no_grad():
        model.network.head.weight.normal_(std=0.1)  # a residual to compute: an untrained head returns the input
    save_checkpoint(tmp_path / "m.pt", model.network, model.info)
    sitk.WriteImage(_thin_head(), str(tmp_path / "thin.nii.gz"))
    args = ["superres", str(tmp_path / "m.pt"), str(tmp_path / "thin.nii.gz"), "--simulate-thick", "--slice-axis", "SI"]
    for precision in ("float32", "bfloat16"):
        assert main([*args, "--precision", precision, "--output", str(tmp_path / f"{precision}.nii.gz")]) == 0
    exact, reduced = (
        sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"{p}.nii.gz"))) for p in ("float32", "bfloat16")
    )
    residual = np.abs(exact - to_thin(to_paper(simulate_thick(_thin_head(), 4, "SI")), 0, 4)).max()
    assert not np.array_equal(exact, reduced) and np.abs(exact - reduced).max() < 0.05 * residual


def test_isotropic_input_needs_a_slice_axis(tmp_path):
    model = load_checkpoint(_model(tmp_path / "m.pt"))
    with pytest.raises(MRSynthError, match="slice axis"):
        superresolve(model, [_thin_head()])


def test_synthesize_points_super_resolution_models_to_superres(tmp_path, capsys):
    path = _model(tmp_path / "m.pt")
    sitk.WriteImage(_thin_head(), str(tmp_path / "a.nii.gz"))
    assert main(["synthesize", str(path), str(tmp_path / "a.nii.gz"), "--output", str(tmp_path / "o.nii.gz")]) == 2
    assert "mrsynth superres" in capsys.readouterr().err


def test_the_network_sees_every_slice_axis_first(tmp_path):
    """Thick slices along LR give what the same volume turned to have them along SI gives, turned back."""
    model = load_checkpoint(_model(tmp_path / "m.pt"))
    with torch.no_grad():
        model.network.head.weight.normal_(std=0.1)  # a live residual that is not symmetric in its axes
    thick = np.random.default_rng(0).random((20, 18, 5)).astype(np.float32) + 1.0
    along_lr = superresolve_arrays(model, [thick], 2)[0][0]
    along_si = superresolve_arrays(model, [np.ascontiguousarray(np.moveaxis(thick, 2, 0))], 0)[0][0]
    np.testing.assert_allclose(np.moveaxis(along_lr, 2, 0), along_si, atol=1e-5)
    assert not np.allclose(along_lr, to_thin(thick, 2, 4), atol=1e-2)  # the network did act


def test_flip_average_is_the_mean_of_the_pass_and_the_mirrored_pass(tmp_path):
    model = load_checkpoint(_model(tmp_path / "m.pt"))
    with torch.no_grad():
        model.network.head.weight.normal_(std=0.1)
    thick = np.random.default_rng(1).random((20, 18, 5)).astype(np.float32) + 1.0  # slices along LR
    one = superresolve_arrays(model, [thick], 2, flip_average=False)[0][0]
    mirrored = superresolve_arrays(model, [thick[..., ::-1].copy()], 2, flip_average=False)[0][0][..., ::-1]
    assert not np.allclose(one, mirrored, atol=1e-3)  # the network is not symmetric: the passes differ
    averaged = superresolve_arrays(model, [thick], 2)[0][0]
    np.testing.assert_allclose(averaged, (one + mirrored) / 2, atol=1e-5)


def test_in_plane_flip_also_averages_the_passes_mirrored_along_the_networks_last_axis(tmp_path):
    model = load_checkpoint(_model(tmp_path / "m.pt"))
    with torch.no_grad():
        model.network.head.weight.normal_(std=0.1)
    thick = np.random.default_rng(2).random((20, 18, 5)).astype(np.float32) + 1.0  # slices along LR

    def single(volume: np.ndarray) -> np.ndarray:
        return superresolve_arrays(model, [np.ascontiguousarray(volume)], 2, flip_average=False)[0][0]

    # thick along LR, the network sees [LR, SI, AP]: its last axis, the one training mirrors, is AP
    passes = [single(thick), single(thick[..., ::-1])[..., ::-1], single(thick[:, ::-1])[:, ::-1],
              single(thick[:, ::-1, ::-1])[:, ::-1, ::-1]]  # fmt: skip
    assert not np.allclose(passes[0], passes[2], atol=1e-3)  # mirroring AP changes the pass
    averaged = superresolve_arrays(model, [thick], 2, in_plane_flip=True)[0][0]
    np.testing.assert_allclose(averaged, np.mean(passes, axis=0), atol=1e-5)
    plane_only = superresolve_arrays(model, [thick], 2, flip_average=False, in_plane_flip=True)[0][0]
    np.testing.assert_allclose(plane_only, (passes[0] + passes[2]) / 2, atol=1e-5)


def test_back_projection_makes_the_output_consistent_with_its_thick_input(tmp_path):
    from mrsynth.thick_slices import back_project, make_thick

    model = load_checkpoint(_model(tmp_path / "m.pt"))
    with torch.no_grad():
        model.network.head.weight.normal_(std=0.1)
    thick = simulate_thick(_thin_head(), 4, "SI")
    plain = superresolve(model, [thick]).outputs[0]
    projected = superresolve(model, [thick], back_projections=2).outputs[0]
    before, after = (np.abs(make_thick(to_paper(o), 0, 4) - to_paper(thick)).mean() for o in (plain, projected))
    assert after < 0.5 * before
    np.testing.assert_allclose(to_paper(projected), back_project(to_paper(plain), to_paper(thick), 0, 4, 2), atol=1e-3)
    with pytest.raises(MRSynthError, match="negative"):
        superresolve(model, [thick], back_projections=-1)
    path = tmp_path / "bp.nii.gz"
    sitk.WriteImage(_thin_head(), str(tmp_path / "thin.nii.gz"))
    args = ["superres", str(tmp_path / "m.pt"), str(tmp_path / "thin.nii.gz"), "--simulate-thick", "--slice-axis", "SI"]
    assert main([*args, "--back-project", "2", "--output", str(path)]) == 0
    assert sitk.ReadImage(str(path)).GetSize() == _thin_head().GetSize()


def _fine_in_plane_thick() -> sitk.Image:
    """Thick slices along SI (4 mm, thin 1 mm) on 0.4 mm in-plane voxels: finer in-plane than the model's 1 mm."""
    thick = simulate_thick(_thin_head(), 4, "SI")
    thick.SetSpacing((0.4, 0.4, 4.0))
    return thick


def test_in_plane_matching_keeps_the_residual_formulation(tmp_path):
    """With a zero residual the matched path returns the input's own cubic interpolation, not a resampled one."""
    model = load_checkpoint(_model(tmp_path / "m.pt"))
    thick = to_paper(_fine_in_plane_thick())
    out, interpolated, _ = superresolve_arrays(model, [thick], 0, in_plane_scale=(0.4, 0.4))
    np.testing.assert_allclose(interpolated[0], to_thin(thick, 0, 4), rtol=1e-6)
    np.testing.assert_allclose(out[0], to_thin(thick, 0, 4), rtol=1e-4, atol=1e-3)


def test_mismatched_in_plane_voxels_run_the_network_at_the_models_size(tmp_path):
    model = load_checkpoint(_model(tmp_path / "m.pt"))
    with torch.no_grad():
        model.network.head.weight.normal_(std=0.1)
    thick = _fine_in_plane_thick()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matched in-plane and 1 mm thin slices: nothing to warn about
        matched = to_paper(superresolve(model, [thick]).outputs[0])
    expected = superresolve_arrays(model, [to_paper(thick)], 0, in_plane_scale=(0.4, 0.4))[0][0]
    np.testing.assert_allclose(matched, expected, atol=1e-5)
    with pytest.warns(UserWarning, match="differs from the model's training voxel size"):
        native = to_paper(superresolve(model, [thick], match_in_plane=False).outputs[0])
    np.testing.assert_allclose(native, superresolve_arrays(model, [to_paper(thick)], 0)[0][0], atol=1e-5)
    assert not np.allclose(matched, native, atol=1e-2)


def test_resample_in_plane_keeps_the_extent_and_smooth_structure():
    from mrsynth.superres import in_plane_shape, resample_in_plane

    assert in_plane_shape((7, 101, 51), 0, (0.5, 2.0)) == (7, 51, 101)
    y, x = np.meshgrid(np.linspace(0, 1, 101), np.linspace(0, 1, 81), indexing="ij")
    smooth = np.broadcast_to(np.sin(2 * np.pi * y) * np.cos(np.pi * x), (5, 101, 81)).astype(np.float32)
    coarse = resample_in_plane(smooth, in_plane_shape(smooth.shape, 0, (0.5, 0.5)))
    assert coarse.shape == (5, 51, 41)
    np.testing.assert_allclose(coarse[:, ::10, ::10], smooth[:, ::20, ::20], atol=0.02)  # first and last centres kept
    back = resample_in_plane(coarse, smooth.shape)
    assert np.abs(back - smooth)[:, 5:-5, 5:-5].max() < 0.03
    noise = np.random.default_rng(0).standard_normal((3, 64, 64)).astype(np.float32)
    assert resample_in_plane(noise, (3, 32, 32)).std() < 0.6  # shrinking low-passes first: no aliased noise


def test_coarser_in_plane_voxels_run_as_they_are(tmp_path):
    """Only finer in-plane voxels are matched (coarser ones gained nothing, docs/superresolution.md)."""
    model = load_checkpoint(_model(tmp_path / "m.pt"))
    with torch.no_grad():
        model.network.head.weight.normal_(std=0.1)
    thick = simulate_thick(_thin_head(), 4, "SI")
    thick.SetSpacing((1.6, 1.6, 4.0))
    with pytest.warns(UserWarning, match="differs from the model's training voxel size"):
        out = to_paper(superresolve(model, [thick]).outputs[0])
    np.testing.assert_allclose(out, superresolve_arrays(model, [to_paper(thick)], 0)[0][0], atol=1e-5)


def test_cli_says_when_the_network_ran_at_the_models_in_plane_voxel_size(tmp_path, capsys):
    path = _model(tmp_path / "m.pt")
    sitk.WriteImage(_fine_in_plane_thick(), str(tmp_path / "thick.nii.gz"))
    args = ["superres", str(path), str(tmp_path / "thick.nii.gz")]
    assert main([*args, "--output", str(tmp_path / "a.nii.gz")]) == 0
    assert "network run at the model's in-plane voxel size (AP and LR voxels x0.4, x0.4" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="differs from the model's training voxel size"):
        assert main([*args, "--no-match-in-plane", "--output", str(tmp_path / "b.nii.gz")]) == 0
    assert "in-plane voxel size" not in capsys.readouterr().out
    assert superresolve(load_checkpoint(path), [_fine_in_plane_thick()]).in_plane_scale == (0.4, 0.4)
