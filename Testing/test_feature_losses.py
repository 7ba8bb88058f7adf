"""Feature networks and the losses on them: perceptual (paper 002) and contextual (Mechrez et al., paper 004)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mrsynth.errors import MRSynthError
from mrsynth.feature_encoder import ConvAutoencoder
from mrsynth.feature_losses import (
    FeatureNetwork,
    contextual_loss,
    contextual_similarity,
    load_feature_network,
    perceptual_loss,
    vgg_features,
)
from mrsynth.models import registry
from mrsynth.simulate import bundled_phantom, simulate
from mrsynth.volume_io import to_paper


def seeded_encoder(seed: int = 0) -> FeatureNetwork:
    """A fixed feature network: a randomly initialised (seeded) autoencoder's encoder."""
    torch.manual_seed(seed)
    return FeatureNetwork("mr-encoder", ConvAutoencoder(width=8, depth=3, max_width=32))


@pytest.fixture(scope="module")
def phantom_slices() -> dict[str, np.ndarray]:
    """Axial slices of the BrainWeb phantom simulated as T1w and T2w TSE (noisy GE too), in p99 units."""
    images = simulate(bundled_phantom(), "brainweb", seed=3)
    out = {}
    for name in ("TSE_HR", "TSE_T2_HR", "GE_aIP"):
        volume = to_paper(images[name])
        volume = volume / np.percentile(volume[volume > 0.05 * volume.max()], 99)
        out[name] = volume
    return out


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]


def test_contextual_loss_is_near_zero_for_identical_feature_sets():
    torch.manual_seed(0)
    features = torch.randn(2, 32, 12, 10)
    assert contextual_loss(features, features).item() < 1e-3
    assert contextual_loss(features, torch.randn(2, 32, 12, 10)).item() > 0.5


def test_contextual_loss_ignores_where_feature_points_are():
    torch.manual_seed(1)
    x, y = torch.randn(1, 16, 9, 11), torch.randn(1, 16, 9, 11)
    shuffled = x.flatten(2)[:, :, torch.randperm(99)].reshape(x.shape)
    assert contextual_loss(shuffled, y).item() == pytest.approx(contextual_loss(x, y).item(), rel=1e-5)
    assert contextual_loss(shuffled, x).item() < 1e-3  # x's own points, moved, still match all of x


def test_contextual_similarity_follows_the_definition():
    """A direct, loop-by-loop evaluation of Mechrez et al.'s formulas agrees with the batched one."""
    torch.manual_seed(2)
    x, y = torch.randn(1, 4, 3, 2), torch.randn(1, 4, 2, 2)
    xs, ys = x.flatten(2)[0].T.double(), y.flatten(2)[0].T.double()
    mu = ys.mean(0)
    xs, ys = xs - mu, ys - mu
    d = torch.tensor([[1 - float(a @ b / (a.norm() * b.norm())) for b in ys] for a in xs])
    rel = d / (d.min(dim=1, keepdim=True).values + 1e-5)
    w = torch.exp((1 - rel) / 0.5)
    cx = w / w.sum(dim=1, keepdim=True)
    expected = cx.max(dim=0).values.mean()
    assert contextual_similarity(x, y).item() == pytest.approx(float(expected), rel=1e-4)


def test_contextual_loss_is_larger_for_unrelated_mr_slices(phantom_slices):
    """Same slice (T1w vs itself re-acquired with noise) < same anatomy, other contrast < other anatomy."""
    features = seeded_encoder()
    t1, t2 = phantom_slices["TSE_HR"], phantom_slices["TSE_T2_HR"]
    rng = np.random.default_rng(0)
    noisy = t1 + rng.normal(0, 0.02, t1.shape).astype(np.float32)
    middle, far = t1.shape[0] // 2, t1.shape[0] // 2 - 45

    def cx_loss(a: np.ndarray, b: np.ndarray) -> float:
        fa, fb = features(as_tensor(a), last=1)[1], features(as_tensor(b), last=1)[1]
        return contextual_loss(fa, fb, max_points=1500, sampling="strided").item()

    same = cx_loss(noisy[middle], t1[middle])
    other_contrast = cx_loss(t2[middle], t1[middle])
    other_slice = cx_loss(t2[far], t1[middle])
    assert same < other_contrast < other_slice


def test_contextual_loss_subsampling_and_batches():
    torch.manual_seed(3)
    x, y = torch.randn(3, 8, 40, 40), torch.randn(3, 8, 40, 40)
    full = contextual_similarity(x, y)
    each = torch.cat([contextual_similarity(x[i : i + 1], y[i : i + 1]) for i in range(3)])
    assert torch.allclose(full, each, atol=1e-6)
    strided = contextual_loss(x, y, max_points=200, sampling="strided")
    assert strided.item() == contextual_loss(x, y, max_points=200, sampling="strided").item()
    generator = torch.Generator().manual_seed(0)
    random = contextual_loss(x, y, max_points=200, generator=generator)
    assert math.isfinite(random.item()) and random.item() > 0
    with pytest.raises(MRSynthError, match="sampling"):
        contextual_loss(x, y, max_points=10, sampling="every other")
    with pytest.raises(MRSynthError, match="channels"):
        contextual_loss(x, y[:, :4])


def test_contextual_loss_gives_gradients_to_the_prediction():
    torch.manual_seed(4)
    x = torch.randn(1, 8, 6, 6, requires_grad=True)
    contextual_loss(x, torch.randn(1, 8, 6, 6)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_perceptual_loss_zero_for_identical_and_positive_otherwise(phantom_slices):
    features = seeded_encoder()
    t1 = as_tensor(phantom_slices["TSE_HR"][90])
    assert perceptual_loss(features, t1, t1.clone(), layers=(0, 1)).item() == 0.0
    blurred = torch.nn.functional.avg_pool2d(t1, 3, stride=1, padding=1)
    assert perceptual_loss(features, blurred, t1).item() > 0
    assert perceptual_loss(features, blurred, t1, l1_weight=1.0).item() > perceptual_loss(features, blurred, t1).item()


def test_perceptual_loss_trains_the_prediction_only(phantom_slices):
    features = seeded_encoder()
    before = {k: v.clone() for k, v in features.state_dict().items()}
    generator = torch.nn.Conv2d(1, 1, 3, padding=1)
    container = torch.nn.ModuleDict({"generator": generator, "features": features})
    container.train()  # a parent in training mode must not unfreeze batch-norm statistics
    assert not features.training
    optimizer = torch.optim.SGD(container.parameters(), lr=0.1)
    source = as_tensor(phantom_slices["GE_aIP"][90])
    target = as_tensor(phantom_slices["TSE_HR"][90])
    loss = perceptual_loss(features, generator(source), target, layers=(0, 2), l1_weight=0.5)
    loss.backward()
    assert generator.weight.grad is not None and generator.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in features.parameters())
    optimizer.step()
    after = features.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert perceptual_loss(features, generator(source), target, layers=(0, 2), l1_weight=0.5).item() < loss.item()


def test_feature_network_handles_3d_and_multichannel_input():
    features = seeded_encoder()
    volume = torch.rand(2, 3, 10, 16, 24)  # [B, C, SI, AP, LR]
    maps = features(volume)
    assert len(maps) == 3
    assert maps[0].shape == (2 * 3 * 24, 8, 8, 8)  # LR slices (the last axis) in the batch; 10 x 16 padded to 16
    assert features(volume, last=0)[0].shape == maps[0].shape
    b, c, lr = 1, 2, 5  # item (b, c, LR slice) sits at (b * C + c) * LR + lr
    assert torch.allclose(maps[1][(b * 3 + c) * 24 + lr], features(volume[b : b + 1, c : c + 1, :, :, lr])[1][0])
    axial = FeatureNetwork("mr-encoder", features.network, slice_axis=2)
    assert axial(volume, last=0)[0].shape == (2 * 3 * 10, 8, 8, 12)
    with pytest.raises(MRSynthError, match="layer 5"):
        features(volume, last=5)
    with pytest.raises(MRSynthError, match=r"\[B, C, H, W\]"):
        features(torch.rand(4, 4))


@pytest.mark.parametrize(("kind", "convolutions"), [("vgg16", 13), ("vgg19", 16)])
def test_vgg_state_dict_files_load_as_feature_networks(tmp_path, kind, convolutions):
    torch.manual_seed(5)
    state = {f"features.{k}": v for k, v in vgg_features(kind).state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision files also hold the classifier
    torch.save(state, tmp_path / f"{kind}.pth")
    features = load_feature_network(str(tmp_path / f"{kind}.pth"))
    assert features.kind == kind and features.layer_count == convolutions
    maps = features(torch.rand(1, 1, 32, 32))
    assert len(maps) == convolutions and maps[0].shape == (1, 64, 32, 32) and maps[-1].shape[1] == 512
    assert features(torch.rand(1, 1, 32, 32), last=0)[0].shape == (1, 64, 32, 32)


def test_unusable_feature_network_files_are_refused(tmp_path):
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "short.pth")
    with pytest.raises(MRSynthError, match="neither VGG16"):
        load_feature_network(str(tmp_path / "short.pth"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MRSynthError, match="cannot be read"):
        load_feature_network(str(tmp_path / "junk.pt"))


def test_published_vgg_weights_are_registered_with_their_hashes():
    """torchvision names its files <name>-<first 8 hex of the sha256>.pth; the registry's hashes agree."""
    entries = registry()
    for name in ("vgg16", "vgg19"):
        entry = entries[name]
        assert entry.task == "feature-network" and not entry.bundled
        tag = entry.urls[0].rsplit("-", 1)[1].removesuffix(".pth")
        assert entry.sha256.startswith(tag) and entry.size > 500_000_000
