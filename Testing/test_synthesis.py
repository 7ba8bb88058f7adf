"""synthesize() and ``mrsynth synthesize``: grids, thick grid, errors, cancellation, no partial outputs."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch import nn

from mrsynth import cli, synthesis
from mrsynth.checkpoint import LoadedModel, ModelInfo, load_checkpoint, save_checkpoint
from mrsynth.errors import Cancelled, MRSynthError
from mrsynth.grids import thick_grid
from mrsynth.inference import InferenceOptions
from mrsynth.networks import HighResNet
from mrsynth.synthesis import INTENSITY_UNIT, synthesize
from mrsynth.volume_io import paper_index_axis, same_grid

KERNEL = [1 / 6, 1 / 3, 1 / 3, 1 / 6]
BRAINWEB_DIRECTION = (0, -1, 0, 1, 0, 0, 0, 0, -1)
# index i runs AP, j runs LR, k runs SI with this direction; LR length 22 is not a multiple of 4
SIZE = (36, 22, 40)
SPACING = (1.0, 1.2, 0.9)
PAPER_VOXEL = [0.9, 1.0, 1.2]


class FirstChannel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1].clone()

    def receptive_field(self) -> tuple[int, int, int]:
        return (1, 1, 1)


def _info(**changes) -> ModelInfo:
    values = dict(
        name="tiny",
        architecture="HighResNet",
        arguments={"in_channels": 2, "out_channels": 1, "width": 2, "blocks_per_stage": 1},
        inputs=["GE_aOP", "GE_aIP"],
        output="TSE",
        voxel_size=PAPER_VOXEL,
        patch=[24, 24, 16],
        stride=[18, 18, 8],
        lr_kernel=KERNEL,
    )
    values.update(changes)
    return ModelInfo(**values)


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "tiny.pt", HighResNet(in_channels=2, width=2, blocks_per_stage=1), _info())


def _image(seed: int, origin=(10.0, -20.0, 30.0)) -> sitk.Image:
    """A noisy ellipsoidal 'head' with texture, on an oblique-index (BrainWeb-like) grid."""
    rng = np.random.default_rng(seed)
    k, j, i = np.meshgrid(*(np.linspace(-1, 1, n) for n in SIZE[::-1]), indexing="ij")
    head = (i**2 + j**2 + k**2) < 0.7
    array = (100 + 30 * np.sin(6 * i + 3 * k) + 10 * j) * head + rng.normal(0, 3, head.shape)
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing(SPACING)
    image.SetOrigin(origin)
    image.SetDirection(BRAINWEB_DIRECTION)
    return image


def _pair():
    return [_image(1), _image(2)]


def _exact_same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (
        a.GetSize() == b.GetSize()
        and a.GetSpacing() == b.GetSpacing()
        and a.GetOrigin() == b.GetOrigin()
        and a.GetDirection() == b.GetDirection()
    )


@pytest.mark.parametrize("mode", ["full-context", "sliding"])
def test_output_lies_on_exactly_the_input_grid(checkpoint, mode):
    model = load_checkpoint(checkpoint)
    images = _pair()
    result = synthesize(model, images, options=InferenceOptions(mode=mode), device="cpu")
    assert _exact_same_grid(result.hr, images[0]) and _exact_same_grid(result.mask, images[0])
    assert result.lr.GetSize() == (36, 6, 40)  # ceil(22 / 4) thick slices along j
    assert np.isfinite(sitk.GetArrayViewFromImage(result.hr)).all()
    assert result.intensity_unit == INTENSITY_UNIT and len(result.scales) == 2


@pytest.mark.parametrize("mode", ["full-context", "sliding"])
def test_voxels_land_where_they_came_from(mode):
    """With a network that returns its first input, HR is input 1 / its p99, voxel for voxel."""
    model = LoadedModel(network=FirstChannel(), info=_info())
    images = _pair()
    result = synthesize(model, images, options=InferenceOptions(mode=mode), device="cpu")
    native = sitk.GetArrayFromImage(images[0])
    np.testing.assert_allclose(sitk.GetArrayFromImage(result.hr), native / result.scales[0], atol=1e-5)
    # thick slice t along j (numpy axis 1) is the kernel-weighted mean of HR slices 4t .. 4t+3
    lr = sitk.GetArrayFromImage(result.lr)
    for t in range(5):
        expected = sum(w * native[:, 4 * t + r, :] for r, w in enumerate(KERNEL)) / result.scales[0]
        np.testing.assert_allclose(lr[:, t, :], expected, atol=1e-4)


def test_thick_grid_slice_centres_are_means_of_hr_slice_centres():
    reference = _image(1)
    thick = thick_grid(reference, 4)
    axis = paper_index_axis(reference, 2)
    assert axis == 1
    assert thick.GetDirection() == reference.GetDirection()
    assert thick.GetSpacing() == pytest.approx((1.0, 4.8, 0.9))
    assert thick.GetSize() == (36, 6, 40)
    for t in range(thick.GetSize()[axis]):
        index = [3, 0, 5]
        index[axis] = t
        centre = np.array(thick.TransformIndexToPhysicalPoint(index))
        hr = []
        for r in range(4):
            hr_index = list(index)
            hr_index[axis] = 4 * t + r
            hr.append(reference.TransformContinuousIndexToPhysicalPoint([float(v) for v in hr_index]))
        np.testing.assert_allclose(centre, np.mean(hr, axis=0), atol=1e-9)


def test_inputs_on_different_grids_are_rejected(checkpoint):
    model = load_checkpoint(checkpoint)
    with pytest.raises(MRSynthError, match="different grids"):
        synthesize(model, [_image(1), _image(2, origin=(11.0, -20.0, 30.0))], device="cpu")


def test_wrong_number_of_inputs_is_rejected(checkpoint):
    model = load_checkpoint(checkpoint)
    with pytest.raises(MRSynthError, match=r"takes 2 inputs \(GE_aOP, GE_aIP, in this order\) but 1"):
        synthesize(model, [_image(1)], device="cpu")


def test_bad_voxels_and_stride_are_rejected(checkpoint):
    model = load_checkpoint(checkpoint)
    bad = _image(1)
    bad[3, 4, 5] = float("nan")
    with pytest.raises(MRSynthError, match=r"input 1 \(GE_aOP\) has 1 NaN"):
        synthesize(model, [bad, _image(2)], device="cpu")
    with pytest.raises(MRSynthError, match="larger than the patch"):
        synthesize(model, _pair(), options=InferenceOptions(mode="sliding", stride=(30, 18, 8)), device="cpu")


def test_voxel_size_far_from_the_models_warns():
    model = LoadedModel(network=FirstChannel(), info=_info(voxel_size=[0.5, 0.5, 0.8]))
    with pytest.warns(UserWarning, match="differs by more than 20%"):
        synthesize(model, _pair(), device="cpu")


def test_progress_raising_cancelled_stops_synthesis(checkpoint):
    def stop(done, total):
        raise Cancelled("cancelled")

    with pytest.raises(Cancelled):
        synthesize(
            load_checkpoint(checkpoint), _pair(), options=InferenceOptions(mode="sliding"), device="cpu", progress=stop
        )


def _write_inputs(tmp_path):
    paths = []
    for n, image in enumerate(_pair()):
        paths.append(str(tmp_path / f"in{n}.nii.gz"))
        sitk.WriteImage(image, paths[-1])
    return paths


def test_cli_writes_both_outputs_on_their_grids(checkpoint, tmp_path):
    inputs = _write_inputs(tmp_path)
    out, out_lr = tmp_path / "hr.nii.gz", tmp_path / "lr.nii.gz"
    code = cli.main(["synthesize", str(checkpoint), *inputs, "--output", str(out), "--output-lr", str(out_lr)])
    assert code == 0
    reference = sitk.ReadImage(inputs[0])
    assert same_grid(sitk.ReadImage(str(out)), reference)
    assert same_grid(sitk.ReadImage(str(out_lr)), thick_grid(reference))


def test_cli_cancel_leaves_no_output(checkpoint, tmp_path, monkeypatch, capsys):
    inputs = _write_inputs(tmp_path)
    original = synthesis.synthesize

    def cancelling(*args, **kwargs):
        def stop(done, total):
            raise Cancelled("synthesis cancelled: no output was written")

        return original(*args, **{**kwargs, "progress": stop})

    monkeypatch.setattr(synthesis, "synthesize", cancelling)
    before = set(tmp_path.iterdir())
    argv = ["synthesize", str(checkpoint), *inputs, "--output", str(tmp_path / "hr.nii.gz")]
    assert cli.main([*argv, "--output-lr", str(tmp_path / "lr.nii.gz"), "--mode", "sliding"]) == 2
    assert set(tmp_path.iterdir()) == before  # no output, no temporary file
    assert "cancelled" in capsys.readouterr().err


def test_cli_checks_output_folder_before_any_work(checkpoint, tmp_path, monkeypatch, capsys):
    import mrsynth.models

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the output path was checked")

    monkeypatch.setattr(mrsynth.models, "load_model", never)
    inputs = _write_inputs(tmp_path)
    code = cli.main(["synthesize", str(checkpoint), *inputs, "--output", str(tmp_path / "missing" / "hr.nii.gz")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "missing does not exist" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--mode", "sliding", "--stride", "18", "18", "20"], "larger than the patch"),
        (["--mode", "full-context", "--stride", "18", "18", "8"], "--stride applies to the sliding mode only"),
        (["--preset", "paper", "--batch-size", "0"], "batch size 0 is not positive"),
        (["--precision", "float16", "--device", "cpu"], "needs a CUDA device"),
    ],
)
def test_cli_rejects_bad_strides(checkpoint, tmp_path, capsys, extra, message):
    inputs = _write_inputs(tmp_path)
    out = tmp_path / "hr.nii.gz"
    assert cli.main(["synthesize", str(checkpoint), *inputs, "--output", str(out), *extra]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_cli_presets_and_flags_reach_the_engine(checkpoint, tmp_path, capsys):
    inputs = _write_inputs(tmp_path)
    out = tmp_path / "hr.nii.gz"
    argv = ["synthesize", str(checkpoint), *inputs, "--output", str(out), "--device", "cpu", "--no-flip-average"]
    assert cli.main([*argv, "--preset", "smooth", "--skip-background", "--batch-size", "16"]) == 0
    report = capsys.readouterr().out
    assert "sliding:" in report and "windows run" in report
    smooth = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    model = load_checkpoint(checkpoint)
    images = _pair()
    options = InferenceOptions(mode="sliding", stride=(18, 18, 1), skip_background=True)
    direct = synthesize(model, images, options=options, device="cpu", flip_average=False)
    np.testing.assert_allclose(smooth, sitk.GetArrayFromImage(direct.hr), atol=1e-6)
    assert cli.main([*argv, "--stride", "18", "18", "8"]) == 0  # a stride alone means sliding
    assert "sliding:" in capsys.readouterr().out


def test_cli_rejects_truncated_checkpoint_and_wrong_input_count(checkpoint, tmp_path, capsys):
    inputs = _write_inputs(tmp_path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(checkpoint.read_bytes()[:500])
    out = str(tmp_path / "hr.nii.gz")
    assert cli.main(["synthesize", str(truncated), *inputs, "--output", out]) == 2
    assert "truncated or not an MRSynth checkpoint" in capsys.readouterr().err
    assert cli.main(["synthesize", str(checkpoint), inputs[0], "--output", out]) == 2
    assert "takes 2 inputs" in capsys.readouterr().err
    assert cli.main(["synthesize", str(checkpoint), inputs[0], str(tmp_path / "nope.nii"), "--output", out]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_mask_comes_from_the_last_input_or_the_user():
    from mrsynth.masks import body_mask
    from mrsynth.volume_io import to_paper

    model = LoadedModel(network=FirstChannel(), info=_info())
    first, last = _image(1), _image(2)
    # the last input (aIP) shows only the upper part of the head
    array = sitk.GetArrayFromImage(last)
    array[25:] = np.random.default_rng(3).normal(0, 3, array[25:].shape)
    cut = sitk.GetImageFromArray(array)
    cut.CopyInformation(last)
    result = synthesize(model, [first, cut], device="cpu")
    expected = body_mask(to_paper(cut))
    np.testing.assert_array_equal(to_paper(result.mask) > 0, expected)
    assert not np.array_equal(expected, body_mask(to_paper(first)))
    given = sitk.Cast(first > 50, sitk.sitkUInt8)
    result = synthesize(model, [first, cut], device="cpu", mask=given)
    inside = to_paper(given) > 0
    np.testing.assert_array_equal(to_paper(result.mask) > 0, inside)
    assert result.scales[0] == pytest.approx(np.percentile(to_paper(first)[inside], 99), rel=1e-6)


def _flip_lr(image: sitk.Image) -> sitk.Image:
    """The same grid with its voxels mirrored along the patient's left-right axis."""
    axis = paper_index_axis(image, 2)
    flipped = sitk.GetImageFromArray(np.ascontiguousarray(np.flip(sitk.GetArrayFromImage(image), 2 - axis)))
    flipped.CopyInformation(image)
    return flipped


@pytest.mark.parametrize("mode", ["full-context", "sliding"])
def test_flip_average_is_the_mean_of_the_plain_and_the_mirrored_pass(checkpoint, mode):
    model = load_checkpoint(checkpoint)
    images = [sitk.RegionOfInterest(x, (36, 20, 40), (0, 0, 0)) for x in _pair()]  # LR length 20: no padding
    mask = sitk.Cast(sitk.GetImageFromArray(np.ones((40, 20, 36), np.uint8)), sitk.sitkUInt8)
    mask.CopyInformation(images[0])
    both = synthesize(model, images, options=InferenceOptions(mode=mode), device="cpu", mask=mask)
    plain = synthesize(model, images, options=InferenceOptions(mode=mode), device="cpu", mask=mask, flip_average=False)
    mirrored = synthesize(
        model,
        [_flip_lr(x) for x in images],
        options=InferenceOptions(mode=mode),
        device="cpu",
        mask=mask,
        flip_average=False,
    )
    expected = (sitk.GetArrayFromImage(plain.hr) + sitk.GetArrayFromImage(_flip_lr(mirrored.hr))) / 2
    np.testing.assert_allclose(sitk.GetArrayFromImage(both.hr), expected, atol=1e-5)
    assert not np.allclose(sitk.GetArrayFromImage(plain.hr), expected, atol=1e-3)  # the network is not symmetric


def test_flip_average_mirrors_the_lr_kernel_with_the_volume():
    """An identity network's sTSE_LR is the same with and without the mirrored pass, for any kernel."""
    model = LoadedModel(network=FirstChannel(), info=_info(lr_kernel=[0.1, 0.2, 0.3, 0.4]))
    both = synthesize(model, _pair(), options=InferenceOptions(mode="sliding"), device="cpu")
    plain = synthesize(model, _pair(), options=InferenceOptions(mode="sliding"), device="cpu", flip_average=False)
    np.testing.assert_allclose(sitk.GetArrayFromImage(both.lr), sitk.GetArrayFromImage(plain.lr), atol=1e-5)


def test_input_scales_replace_the_inputs_percentiles():
    """The scales a whole-head run reports, given back for a crop of it, make the crop's voxels come out
    as in the whole-head run; the crop's own percentiles would not (a network that returns input 1)."""
    model = LoadedModel(network=FirstChannel(), info=_info())
    images = _pair()
    whole = synthesize(model, images, device="cpu", flip_average=False)
    crop = [sitk.RegionOfInterest(x, (36, 11, 40), (0, 0, 0)) for x in images]  # its darker half along LR
    own = synthesize(model, crop, device="cpu", flip_average=False)
    given = synthesize(model, crop, device="cpu", flip_average=False, input_scales=whole.scales)
    assert given.scales == whole.scales and own.scales[0] < 0.98 * whole.scales[0]
    expected = sitk.GetArrayFromImage(sitk.RegionOfInterest(whole.hr, (36, 11, 40), (0, 0, 0)))
    np.testing.assert_allclose(sitk.GetArrayFromImage(given.hr), expected, atol=1e-5)
    assert np.abs(sitk.GetArrayFromImage(own.hr) - expected).max() > 0.01


@pytest.mark.parametrize(
    ("scales", "message"),
    [([0.5], "1 input scales for 2 inputs"), ([1.0, 0.0], "must be positive"), ([1.0, float("nan")], "positive")],
)
def test_cli_refuses_bad_input_scales(checkpoint, tmp_path, capsys, scales, message):
    inputs = _write_inputs(tmp_path)
    argv = ["synthesize", str(checkpoint), *inputs, "--output", str(tmp_path / "hr.nii.gz")]
    assert cli.main([*argv, "--input-scales", *map(str, scales)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "hr.nii.gz").exists()


def test_input_scales_are_refused_for_models_that_do_not_use_percentiles():
    model = LoadedModel(network=FirstChannel(), info=_info(normalisation={"method": "none"}))
    with pytest.raises(MRSynthError, match="does not divide its inputs by their 99th percentile"):
        synthesize(model, _pair(), device="cpu", input_scales=[1.0, 1.0])
