"""The MR feature encoder (paper 001's convolutional autoencoder): shapes, training data, training, bundled model."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from mrsynth.checkpoint import ModelInfo, load_checkpoint, save_checkpoint
from mrsynth.encoder_training import ENCODER_DEFAULTS, SliceSampler, train_encoder, volume_slices
from mrsynth.errors import MRSynthError
from mrsynth.feature_encoder import ConvAutoencoder
from mrsynth.feature_losses import load_feature_network
from mrsynth.models import registry
from mrsynth.training import load_config
from mrsynth.volume_io import read_volume, to_paper


def test_encoder_stages_and_reconstruction_shapes():
    torch.manual_seed(0)
    network = ConvAutoencoder(width=8, depth=3, max_width=16).eval()
    x = torch.rand(2, 1, 40, 52) * 1.2
    features = network.encode(x)
    # 52 is padded to 56 (a multiple of 2**3); each stage halves and widths double up to max_width
    assert [tuple(f.shape) for f in features] == [(2, 8, 20, 28), (2, 16, 10, 14), (2, 16, 5, 7)]
    assert network.feature_channels == [8, 16, 16]
    assert len(network.encode(x, stages=1)) == 1
    with torch.no_grad():
        out = network(x)
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= network.intensity_range
    volume = torch.rand(1, 1, 3, 40, 52)  # [B, C, SI, AP, LR]: axial slices, each reconstructed alone
    assert network(volume).shape == volume.shape
    assert torch.allclose(network(volume)[:, :, 1], network(volume[:, :, 1]), atol=1e-6)


def test_intensity_mapping_fills_tanh_range():
    network = ConvAutoencoder(intensity_range=1.25)
    values = torch.tensor([0.0, 0.625, 1.25])
    assert torch.allclose(network.to_internal(values), torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.allclose(network.from_internal(network.to_internal(values)), values)


def test_bad_encoder_settings_are_refused():
    with pytest.raises(MRSynthError, match="depth"):
        ConvAutoencoder(depth=0)
    with pytest.raises(MRSynthError, match="intensity_range"):
        ConvAutoencoder(intensity_range=0)
    with pytest.raises(MRSynthError, match=r"\[B, 1, H, W\]"):
        ConvAutoencoder().encode(torch.rand(1, 2, 32, 32))


def test_encoder_checkpoints_rebuild_the_same_network(tmp_path):
    torch.manual_seed(1)
    network = ConvAutoencoder(width=4, depth=2, max_width=8).eval()
    arguments = {"in_channels": 1, "width": 4, "depth": 2, "max_width": 8, "intensity_range": 1.25}
    info = ModelInfo(
        name="enc",
        architecture="ConvAutoencoder",
        arguments=arguments,
        inputs=["MR image (any contrast)"],
        output="MR image (autoencoder reconstruction)",
        voxel_size=[1.0, 1.0, 1.0],
        patch=[8, 32, 32],
        stride=[8, 16, 16],
        task="feature-encoder",
    )
    path = save_checkpoint(tmp_path / "enc.pt", network, info)
    loaded = load_checkpoint(path)
    x = torch.rand(1, 1, 24, 20)
    assert torch.equal(loaded.network(x), network(x))
    features = load_feature_network(str(path))
    assert features.kind == "mr-encoder" and features.layer_count == 2
    assert torch.equal(features(x)[1], network.encode(x)[1])


def test_volume_slices_do_not_depend_on_the_intensity_scale(shared_data):
    volume = to_paper(read_volume(shared_data / "spm12" / "canonical_avg152T2.nii"))
    slices = volume_slices(volume, 4)
    assert len(slices) == 12 and all(s.ndim == 2 for s in slices)
    rescaled = volume_slices(volume * 37.5, 4)
    assert all(np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(slices, rescaled, strict=True))
    body = np.concatenate([s[s > 0.1].ravel() for s in slices])
    assert 0.5 < np.percentile(body, 99) < 1.5  # p99 units: the brightest tissue near 1


def test_slice_sampler_pads_small_slices_and_resumes():
    slices = [np.ones((20, 50), np.float32), np.full((64, 64), 2.0, np.float32)]
    sampler = SliceSampler(slices, (32, 32), np.random.default_rng(0))
    x, y, kernel = sampler.draw(6)
    assert x.shape == (6, 1, 32, 32) and y is x and kernel is None
    small = [p for p in x[:, 0] if p.max() == 1.0]
    assert all((p == 0).any() for p in small)  # a 20-pixel side is zero-padded to 32
    state = sampler.state()
    first = sampler.draw(3)[0]
    sampler.restore(state)
    assert np.array_equal(sampler.draw(3)[0], first)
    with pytest.raises(MRSynthError, match="no slices"):
        SliceSampler([], (32, 32), np.random.default_rng(0))


def test_encoder_training_runs_and_resumes(shared_data, tmp_path):
    overrides = {
        "data": {
            "train": {"volumes": [str(shared_data / "spm12" / "canonical_avg152T1.nii")]},
            "val": {"volumes": [str(shared_data / "spm12" / "canonical_avg152PD.nii")]},
            "slices_per_axis": 2,
        },
        "model": {"width": 4, "depth": 2, "max_width": 8},
        "patch": [32, 32],
        "batch_size": 2,
        "iterations": 4,
        "epoch_patches": 4,
        "val_patches": 2,
        "checkpoint_every": 2,
        "device": "cpu",
    }
    config = load_config(None, overrides, ENCODER_DEFAULTS)
    run = tmp_path / "run"
    model = train_encoder(config, run)
    info = load_checkpoint(model).info
    assert info.task == "feature-encoder" and info.architecture == "ConvAutoencoder"
    assert info.training["train_cases"] == ["canonical_avg152T1.nii"] and info.training["train_slices"] == 6
    train_encoder(resume=run, resume_overrides={"iterations": 6})
    with open(run / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(float(r["train_loss"])) for r in rows)
    assert load_checkpoint(run / "checkpoints" / "last.pt").info.training["iterations"] == 6


def test_bundled_encoder_reconstructs_a_held_out_real_slice(shared_data):
    """Better than the same network untrained, and closer to its slice than the slice 8 mm away is."""
    if "mr-feature-encoder" not in registry():
        pytest.fail("the bundled feature encoder mr-feature-encoder is not registered")
    features = load_feature_network()
    assert features.kind == "mr-encoder" and not features.training
    network = features.network
    volume = to_paper(read_volume(shared_data / "tcga_brats_space" / "TCGA-FG-6692_t2.nii.gz"))
    slices = volume_slices(volume, 5)[:5]  # axial slices, held out from training
    torch.manual_seed(0)
    untrained = ConvAutoencoder(**load_checkpoint(registry()["mr-feature-encoder"].path()).info.arguments).eval()
    peak = network.intensity_range
    for image in slices[1:4]:
        x = torch.from_numpy(np.ascontiguousarray(image))[None, None]
        target = x.clamp(0, peak)
        with torch.no_grad():
            error = float((network(x) - target).abs().mean())
            error_untrained = float((untrained(x) - target).abs().mean())
        assert error < 0.5 * error_untrained
    middle = volume.shape[0] // 2
    normalised = volume / np.percentile(volume[volume > 0], 99)
    x = torch.from_numpy(np.ascontiguousarray(normalised[middle]))[None, None]
    with torch.no_grad():
        error = float((network(x) - x.clamp(0, peak)).abs().mean())
    neighbour = torch.from_numpy(np.ascontiguousarray(normalised[middle + 8]))[None, None].clamp(0, peak)
    assert error < float((neighbour - x.clamp(0, peak)).abs().mean())
