"""MRI2MRI (paper 002): the slice-wise U-Net, the trainer and scale-invariant synthesis."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from mrsynth.checkpoint import LoadedModel, ModelInfo, load_checkpoint, save_checkpoint
from mrsynth.errors import MRSynthError
from mrsynth.feature_encoder import ConvAutoencoder
from mrsynth.mri2mri import MRI2MRI_DEFAULTS, train_mri2mri
from mrsynth.networks import build_network
from mrsynth.synthesis import synthesize
from mrsynth.training import load_config
from mrsynth.volume_io import to_paper


def test_slice_unet_keeps_any_shape_and_maps_slices_independently():
    torch.manual_seed(0)
    network = build_network("SliceUNet", {"in_channels": 2, "width": 4, "levels": 3}).eval()
    assert network.receptive_field()[0] == 1
    x = torch.randn(1, 2, 3, 37, 50)
    with torch.no_grad():
        out = network(x)
        changed = x.clone()
        changed[:, :, 0] += 5.0
        out_changed = network(changed)
    assert out.shape == (1, 1, 3, 37, 50)
    assert not torch.allclose(out[:, :, 0], out_changed[:, :, 0])
    assert torch.equal(out[:, :, 1:], out_changed[:, :, 1:])


def _subject(folder, seed: int) -> dict[str, str]:
    """A skull-stripped-like head: a bright ellipsoid with darker 'ventricles' on a zero background; T2 inverts it."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:6, :40, :40]
    head = ((y - 20) / 16.0) ** 2 + ((x - 20) / 14.0) ** 2 < 1
    core = ((y - 20) / 5.0) ** 2 + ((x - 20) / 4.0) ** 2 < 1
    t1 = np.where(head, 600.0, 0.0) - np.where(core, 350.0, 0.0) + head * rng.normal(0, 10, head.shape)
    t2 = np.where(head, 200.0, 0.0) + np.where(core, 500.0, 0.0) + head * rng.normal(0, 10, head.shape)
    paths = {"name": f"s{seed}"}
    for name, array in (("T1w", t1), ("T2w", t2)):
        path = folder / f"s{seed}_{name}.nii.gz"
        sitk.WriteImage(sitk.GetImageFromArray(array.astype(np.float32)), str(path))
        paths[name] = str(path)
    return paths


def _config(cases, **changes):
    settings = {
        "data": {"train": cases, "inputs": ["T1w"], "target": "T2w"},
        "model": {"width": 4, "levels": 3},
        "loss": {"feature_network": None},
        "patch": [1, 32, 32],
        "batch_size": 2,
        "iterations": 3,
        "epoch_patches": 2,
        "device": "cpu",
    }
    return load_config(None, settings | changes, MRI2MRI_DEFAULTS)


def test_trained_model_gives_the_same_output_for_raw_rescaled_and_z_scored_inputs(tmp_path):
    cases = [_subject(tmp_path, 1), _subject(tmp_path, 2)]
    model_file = train_mri2mri(_config(cases), tmp_path / "run")
    model = load_checkpoint(model_file)
    assert model.info.normalisation["method"] == "affine"
    assert model.info.inputs == ["T1w"] and model.info.output == "T2w"
    image = sitk.ReadImage(cases[0]["T1w"], sitk.sitkFloat32)
    raw = to_paper(synthesize(model, [image], flip_average=False).hr)
    brain = sitk.GetArrayFromImage(image) > 0
    for a, b in ((3.7, -120.0), (0.02, 9.0)):
        out = to_paper(synthesize(model, [image * a + b], flip_average=False).hr)
        assert np.abs(out - raw).max() < 1e-5
    array = sitk.GetArrayFromImage(image)
    z_scored = sitk.GetImageFromArray((array - array[brain].mean()) / array[brain].std())
    z_scored.CopyInformation(image)
    assert np.abs(to_paper(synthesize(model, [z_scored], flip_average=False).hr) - raw).max() < 1e-5


def test_perceptual_loss_trains_through_a_saved_feature_encoder(tmp_path):
    torch.manual_seed(0)
    encoder = ConvAutoencoder(width=4, depth=2, max_width=8)
    info = ModelInfo(
        name="tiny-encoder",
        architecture="ConvAutoencoder",
        arguments={"width": 4, "depth": 2, "max_width": 8},
        inputs=["MR"],
        output="MR",
        voxel_size=[1.0, 1.0, 1.0],
        patch=[1, 32, 32],
        stride=[1, 32, 32],
    )
    encoder_file = save_checkpoint(tmp_path / "encoder.pt", encoder, info)
    cases = [_subject(tmp_path, 3)]
    loss = {"feature_network": str(encoder_file), "layers": [0, 1], "l1_weight": 0.5}
    perceptual = _losses(train_mri2mri(_config(cases, loss=loss), tmp_path / "perceptual").parent)
    pixel = _losses(train_mri2mri(_config(cases), tmp_path / "pixel").parent)
    assert len(perceptual) == 3 and all(np.isfinite(perceptual))
    # Same seed, so the same first batch and network: the feature term adds to half the pixel L1.
    assert perceptual[0] > 0.5 * pixel[0] + 1e-6


def _losses(run) -> list[float]:
    return [float(line.split(",")[1]) for line in (run / "log.csv").read_text().splitlines()[1:]]


def test_cases_must_name_every_contrast(tmp_path):
    case = _subject(tmp_path, 4)
    del case["T2w"]
    with pytest.raises(MRSynthError, match="T2w"):
        train_mri2mri(_config([case]), tmp_path / "run")


def test_ssim_weight_adds_the_ssim_loss_to_the_pixel_loss(tmp_path):
    cases = [_subject(tmp_path, 5)]
    torch.manual_seed(0)
    plain = _losses(train_mri2mri(_config(cases), tmp_path / "plain").parent)
    torch.manual_seed(0)
    loss = {"feature_network": None, "ssim_weight": 2.0}
    with_ssim = _losses(train_mri2mri(_config(cases, loss=loss), tmp_path / "ssim").parent)
    # Same seed, so the same first batch and network: the first logged loss grows by 2 x (1 - SSIM) > 0.
    assert np.isfinite(with_ssim).all()
    assert with_ssim[0] > plain[0] + 1e-3


def test_input_gamma_changes_the_inputs_by_a_power_within_range_and_leaves_targets(tmp_path):
    from mrsynth.mri2mri import ContrastCase, SliceSampler

    case = ContrastCase(_subject(tmp_path, 6), ["T1w"], "T2w", 0.3)
    gammas = []
    for seed in range(6):
        x, y, _ = SliceSampler([case], (1, 32, 32), np.random.default_rng(seed)).draw(1)
        xg, yg, _ = SliceSampler([case], (1, 32, 32), np.random.default_rng(seed), input_gamma=(0.5, 2.0)).draw(1)
        np.testing.assert_array_equal(yg, y)  # the same crop (gamma is drawn after it), the target untouched
        assert np.array_equal(np.sign(xg), np.sign(x))
        magnitude = np.abs(x)
        usable = (magnitude > 0.05) & ((magnitude < 0.9) | (magnitude > 1.1))  # log|x| far from 0
        exponents = np.log(np.abs(xg[usable])) / np.log(np.abs(x[usable]))
        assert np.ptp(exponents) < 1e-3  # one power per crop and channel
        gammas.append(float(np.median(exponents)))
    assert all(0.5 - 1e-3 <= g <= 2.0 + 1e-3 for g in gammas) and np.ptp(gammas) > 0.1
    with pytest.raises(MRSynthError, match="input_gamma"):
        SliceSampler([case], (1, 32, 32), np.random.default_rng(0), input_gamma=(0.0, 1.0))


class _ReturnsInput(torch.nn.Module):
    """A stand-in network that returns what it is given, to see the network input synthesize prepares."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def receptive_field(self) -> tuple[int, int, int]:
        return (1, 1, 1)


def test_histogram_standardisation_is_learnt_from_the_training_subjects_and_applied_by_synthesize(tmp_path):
    from mrsynth.mri2mri import ContrastCase
    from mrsynth.normalisation import invariant_mask, landmarks

    cases = [_subject(tmp_path, 1), _subject(tmp_path, 2)]
    model = load_checkpoint(train_mri2mri(_config(cases, histogram_standardisation=True), tmp_path / "run"))
    stored = model.info.normalisation["landmarks"]
    found = [ContrastCase(c, ["T1w"], "T2w", 0.3).landmarks() for c in cases]
    np.testing.assert_allclose(stored["reference"], np.mean(found, axis=0), rtol=1e-6)
    assert len(stored["quantiles"]) == len(stored["reference"][0])
    # What the network receives, seen through a stand-in network that returns its input: a scan whose tissue sits
    # brighter relative to its p99 (a monotonic power < 1 of it) arrives with the training landmarks, whatever
    # its a * x + b; without the stored landmarks it arrives as it is.
    image = sitk.ReadImage(cases[0]["T1w"], sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(image)
    bright = sitk.GetImageFromArray(np.sqrt(np.clip(array, 0, None)).astype(np.float32))
    bright.CopyInformation(image)
    seen = LoadedModel(network=_ReturnsInput(), info=model.info, path=None)
    unseen_info = copy.deepcopy(model.info)
    del unseen_info.normalisation["landmarks"]
    unseen = LoadedModel(network=_ReturnsInput(), info=unseen_info, path=None)
    for x in (image, bright, bright * 3.0 - 7.0):
        received = to_paper(synthesize(seen, [x], flip_average=False).hr)
        mask = invariant_mask(to_paper(x))  # the body mask synthesize uses
        np.testing.assert_allclose(landmarks(received, mask), stored["reference"][0], atol=0.01)
    as_is = to_paper(synthesize(unseen, [bright], flip_average=False).hr)
    mask = invariant_mask(to_paper(bright))
    assert np.abs(np.array(landmarks(as_is, mask)) - stored["reference"][0]).max() > 0.1


def test_fine_tuning_an_ensemble_asks_for_its_members(tmp_path):
    from mrsynth.ensemble import combine

    cases = [_subject(tmp_path, 6)]
    model = train_mri2mri(_config(cases), tmp_path / "one")
    pair = combine([load_checkpoint(model), load_checkpoint(model)])
    ensemble = save_checkpoint(tmp_path / "pair.pt", pair.network, pair.info)
    with pytest.raises(MRSynthError, match="--member K"):
        train_mri2mri(_config(cases, init_weights=str(ensemble)), tmp_path / "two")
