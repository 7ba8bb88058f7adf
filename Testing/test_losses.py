"""MIND on Sobel features (paper 000, section II.E.2), checked against a loop-by-loop numpy version."""

import itertools

import numpy as np
import pytest
import torch

from mrsynth.losses import mind, mind_loss, sobel


def _numpy_sobel(x, spacing):
    """Sobel derivatives written out voxel by voxel (replicated border)."""
    padded = np.pad(x, 1, mode="edge")
    out = np.zeros((3, *x.shape))
    weights = {-1: 0.25, 0: 0.5, 1: 0.25}
    for axis in range(3):
        for v in itertools.product(*(range(n) for n in x.shape)):
            total = 0.0
            for o in itertools.product((-1, 0, 1), repeat=3):
                if o[axis] == 0:
                    continue
                w = o[axis] / (2 * spacing[axis])
                for a in range(3):
                    if a != axis:
                        w *= weights[o[a]]
                total += w * padded[tuple(v[a] + 1 + o[a] for a in range(3))]
            out[(axis, *v)] = total
    return out


def _numpy_distances(x):
    """Heinrich's patch distances on one channel: six neighbours, 3x3x3 box patches, replicated borders."""
    shape = x.shape
    padded = np.pad(x, 1, mode="edge")
    d = np.zeros((6, *shape))
    offsets = [(-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)]
    for r, offset in enumerate(offsets):
        shifted = padded[tuple(slice(1 + o, 1 + o + n) for o, n in zip(offset, shape, strict=True))]
        squared = np.pad((x - shifted) ** 2, 1, mode="edge")
        for v in itertools.product(*(range(n) for n in shape)):
            d[(r, *v)] = squared[v[0] : v[0] + 3, v[1] : v[1] + 3, v[2] : v[2] + 3].mean()
    return d


def _numpy_mind(channels):
    """MIND per channel; the small term that keeps V > 0 is relative to V's mean over all channels."""
    d = np.stack([_numpy_distances(x) for x in channels])  # [C, 6, ...]
    var = d.mean(1, keepdims=True)
    var = var + 1e-3 * var.mean()
    descriptor = np.exp(-d / var)
    return (descriptor / descriptor.max(1, keepdims=True)).reshape(-1, *channels.shape[1:])


def test_mind_of_sobel_features_matches_a_loop_by_loop_version():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 6, 4))
    spacing = (1.0, 0.5, 2.0)
    features = sobel(torch.from_numpy(x)[None, None], spacing)[0].numpy()
    np.testing.assert_allclose(features, _numpy_sobel(x, spacing), atol=1e-10)
    ours = mind(torch.from_numpy(features)[None])[0].numpy()
    expected = _numpy_mind(_numpy_sobel(x, spacing))
    np.testing.assert_allclose(ours, expected, atol=1e-10)


def test_sobel_of_a_ramp_is_its_slope_in_millimetres():
    ramp = torch.arange(8, dtype=torch.float64)[None, None, None, None, :].expand(1, 1, 6, 6, 8)
    features = sobel(ramp, spacing=(1.0, 1.0, 0.5))[0]
    assert torch.allclose(features[2, :, :, 1:-1], torch.full_like(features[2, :, :, 1:-1], 2.0))  # 1 per 0.5 mm
    assert torch.allclose(features[:2], torch.zeros_like(features[:2]))


def _blob_pair(seed=1):
    rng = np.random.default_rng(seed)
    grid = np.indices((16, 16, 12)).astype(float)
    image = np.zeros((16, 16, 12))
    for _ in range(4):
        centre = rng.uniform(3, 12, size=3)
        image += np.exp(-(((grid - centre[:, None, None, None]) ** 2).sum(0)) / 8)
    return torch.from_numpy(image)[None, None]


def test_mind_loss_is_zero_for_identical_inputs_and_invariant_to_linear_intensity_changes():
    a = _blob_pair(1)
    b = _blob_pair(2)
    assert float(mind_loss(a, a)) == 0.0
    reference = float(mind_loss(a, b))
    assert reference > 1e-3
    assert float(mind_loss(3.0 * a + 7.0, b)) == pytest.approx(reference, rel=1e-6)
    assert float(mind_loss(a, 0.2 * a - 1.0)) == pytest.approx(0.0, abs=1e-12)


def test_mind_loss_barely_moves_under_a_monotonic_nonlinear_change():
    a, b = _blob_pair(1), _blob_pair(2)
    # a smooth monotonic remapping of one input keeps its structure: far closer than another image
    assert float(mind_loss(a, torch.sqrt(a + 0.1))) < 0.2 * float(mind_loss(a, b))


def test_mind_loss_gives_gradients_to_the_prediction():
    guide = _blob_pair(1).float()
    prediction = _blob_pair(2).float().requires_grad_(True)
    mind_loss(prediction, guide, spacing=(1.0, 1.0, 2.0)).backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
