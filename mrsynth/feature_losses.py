"""Losses computed on the feature maps of a fixed network: perceptual loss (002) and contextual loss (004).

The feature network is our own MR autoencoder's encoder (``mr-feature-encoder``, paper 001 section
3.1) by default, or a VGG16/VGG19 whose torchvision state-dict file a user has (ImageNet weights
cannot be fetched on every machine, and features learned on MR suit MR). Feature networks are
frozen: gradients flow through them to the image, never into their weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import MRSynthError
from .feature_encoder import ConvAutoencoder

# torchvision's VGG "features" layer lists: numbers are 3x3 convolution widths (each followed by
# ReLU), "M" a 2x2 max-pooling; the indices of this Sequential match torchvision's state-dict keys.
VGG_LAYOUTS = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_features(kind: str) -> nn.Sequential:
    """VGG16/19's convolutional part, laid out like torchvision's ``features`` so its weights load."""
    if kind not in VGG_LAYOUTS:
        raise MRSynthError(f"unknown VGG {kind!r}: use {' or '.join(VGG_LAYOUTS)}")
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG_LAYOUTS[kind]:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
            channels = int(item)
    return nn.Sequential(*layers)


class FeatureNetwork(nn.Module):
    """A frozen feature extractor returning one feature map per layer.

    Images come in the project's p99 units (0 = air, 1 = the 99th percentile inside the body).
    Every input channel is treated as a separate grey image (channels are folded into the batch), and
    3D input ``[B, C, D, H, W]`` is cut into 2D slices along ``slice_axis`` (the last axis by
    default), also folded into the batch: feature maps are ``[B * C (* slices), F, h, w]``, in the same
    order for a prediction and its target, so paired losses compare matching slices.

    With the MR autoencoder the layers are its encoder stages. With VGG the layers are the outputs
    of every ReLU after a convolution (VGG16: 13, relu1_1 first; VGG19: 16, relu5_4 = conv5_4's
    activation last); the grey image (p99 units, 1.0 mapped to white) is repeated onto three
    channels and normalised with ImageNet's mean and standard deviation.
    """

    def __init__(self, kind: str, network: nn.Module, slice_axis: int = -1):
        super().__init__()
        if kind != "mr-encoder" and kind not in VGG_LAYOUTS:
            raise MRSynthError(f"unknown feature network kind {kind!r}: use mr-encoder, vgg16 or vgg19")
        self.kind = kind
        self.network = network
        self.slice_axis = slice_axis
        if kind != "mr-encoder":
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FeatureNetwork:
        """Stays in evaluation mode (batch-norm statistics frozen) even inside a model put in training."""
        return super().train(False)

    @property
    def layer_count(self) -> int:
        if isinstance(self.network, ConvAutoencoder):
            return self.network.depth
        return sum(isinstance(layer, nn.Conv2d) for layer in self.network)

    def _slices(self, x: torch.Tensor) -> torch.Tensor:
        """Any [B, C, *spatial] image as grey 2D slices [N, 1, H, W]."""
        if x.dim() == 5:
            x = torch.movedim(x, self.slice_axis, 2)
            x = x.reshape(-1, 1, *x.shape[-2:])
        elif x.dim() == 4:
            x = x.reshape(-1, 1, *x.shape[-2:])
        else:
            raise MRSynthError(f"feature networks take [B, C, H, W] or [B, C, D, H, W] images, not {list(x.shape)}")
        return x

    def forward(self, x: torch.Tensor, last: int | None = None) -> list[torch.Tensor]:
        """Feature maps of layers 0..``last`` (all layers when ``last`` is None)."""
        count = self.layer_count if last is None else last + 1
        if not 1 <= count <= self.layer_count:
            raise MRSynthError(f"layer {last} does not exist: this feature network has {self.layer_count} layers")
        slices = self._slices(x)
        if isinstance(self.network, ConvAutoencoder):
            return self.network.encode(slices, stages=count)
        h = (slices.expand(-1, 3, -1, -1) - self.mean) / self.std
        features: list[torch.Tensor] = []
        for layer in self.network:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                features.append(h)
                if len(features) == count:
                    break
        return features


def _vgg_from_state_dict(state: dict, source: str) -> FeatureNetwork:
    weights = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    convolutions = sum(1 for k in weights if k.endswith(".weight"))
    kind = {13: "vgg16", 16: "vgg19"}.get(convolutions)
    if kind is None:
        raise MRSynthError(
            f"{source} has {convolutions} 'features.*' convolutions, neither VGG16 (13) nor VGG19 (16): give a "
            "torchvision VGG16/VGG19 state dict or an MRSynth feature encoder"
        )
    network = vgg_features(kind)
    try:
        network.load_state_dict(weights)
    except RuntimeError as err:
        raise MRSynthError(f"{source} does not fit {kind} ({str(err).splitlines()[0]}): the file is damaged") from None
    return FeatureNetwork(kind, network)


def load_feature_network(
    name_or_path: str = "mr-feature-encoder", device: str | torch.device = "cpu"
) -> FeatureNetwork:
    """The bundled MR encoder (default), another registered or saved ConvAutoencoder, or a VGG16/19 state dict."""
    from .checkpoint import FORMAT, load_checkpoint
    from .models import resolve

    path = resolve(name_or_path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to unpickle means the file is unusable
        raise MRSynthError(
            f"{path} cannot be read as a PyTorch file ({type(err).__name__}): download it again"
        ) from None
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        loaded = load_checkpoint(Path(path))
        if not isinstance(loaded.network, ConvAutoencoder):
            raise MRSynthError(
                f"{name_or_path} is a {loaded.info.architecture} model, not a feature encoder: use mr-feature-encoder "
                "or a VGG16/VGG19 state dict"
            )
        features = FeatureNetwork("mr-encoder", loaded.network)
    elif isinstance(payload, dict):
        features = _vgg_from_state_dict(payload, str(path))
    else:
        raise MRSynthError(f"{path} is neither an MRSynth checkpoint nor a state dict: give a feature network file")
    return features.to(device)


def perceptual_loss(
    features: FeatureNetwork,
    prediction: torch.Tensor,
    target: torch.Tensor,
    layers: Sequence[int] = (0,),
    l1_weight: float = 0.0,
) -> torch.Tensor:
    """Mean squared feature-map difference at ``layers``, summed over layers, plus ``l1_weight`` x pixel L1.

    As in 002 (after Johnson et al. 2016: squared Euclidean distance normalised by the map's size),
    with the first layer by default ("the activation of the first layer" of the feature network).
    The target's features are computed without gradient.
    """
    if prediction.shape != target.shape:
        raise MRSynthError(f"prediction {list(prediction.shape)} and target {list(target.shape)} differ in shape")
    if not layers:
        raise MRSynthError("perceptual_loss needs at least one layer")
    last = max(layers)
    predicted = features(prediction, last=last)
    with torch.no_grad():
        wanted = features(target, last=last)
    loss = sum(F.mse_loss(predicted[i], wanted[i]) for i in layers)
    if l1_weight:
        loss = loss + l1_weight * F.l1_loss(prediction, target)
    return loss  # type: ignore[return-value]


def _points(features: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    flat = features.flatten(2)  # [B, C, N]
    return flat if index is None else flat[:, :, index]


def sample_points(count: int, max_points: int | None, mode: str, generator: torch.Generator | None = None):
    """Indices of at most ``max_points`` of ``count`` feature points: ``random`` or evenly ``strided``."""
    if max_points is None or count <= max_points:
        return None
    if mode == "random":
        return torch.randperm(count, generator=generator)[:max_points]
    if mode == "strided":
        return torch.linspace(0, count - 1, max_points).round().long()
    raise MRSynthError(f"unknown sampling {mode!r}: use 'random' or 'strided'")


def contextual_similarity(
    x_features: torch.Tensor,
    y_features: torch.Tensor,
    bandwidth: float = 0.5,
    eps: float = 1e-5,
    max_points: int | None = None,
    sampling: str = "random",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """CX(x, y) per batch item (Mechrez et al. 2018, as used in 004), in (0, 1]; 1 when y's points are all in x.

    Both feature sets are centred by the mean of y's feature points, and d_ij is the cosine distance
    between point i of x and point j of y; d~_ij = d_ij / (min_k d_ik + eps); w_ij =
    exp((1 - d~_ij) / bandwidth); CX_ij = w_ij / sum_k w_ik; CX = mean_j max_i CX_ij. With
    ``max_points`` at most that many positions (the same ones in x and y) are used, chosen at random
    or evenly strided, so large maps fit in memory (N x N distances per item).
    """
    if x_features.shape[:2] != y_features.shape[:2]:
        raise MRSynthError(
            f"contextual loss needs the same batch and channels, not {list(x_features.shape)} and "
            f"{list(y_features.shape)}"
        )
    if bandwidth <= 0:
        raise MRSynthError(f"the contextual loss bandwidth must be positive, not {bandwidth}")
    count = min(x_features[0, 0].numel(), y_features[0, 0].numel())
    index = sample_points(count, max_points, sampling, generator)
    if index is not None:
        index = index.to(x_features.device)
    x = _points(x_features, index)
    y = _points(y_features, index)
    centre = y.mean(dim=2, keepdim=True)
    x = F.normalize(x - centre, dim=1)
    y = F.normalize(y - centre, dim=1)
    distance = 1.0 - torch.bmm(x.transpose(1, 2), y)  # [B, N_x, N_y]
    relative = distance / (distance.min(dim=2, keepdim=True).values + eps)
    weights = torch.softmax((1.0 - relative) / bandwidth, dim=2)  # exp(.) / sum_k exp(.), stably
    return weights.max(dim=1).values.mean(dim=1)


def contextual_loss(
    x_features: torch.Tensor,
    y_features: torch.Tensor,
    bandwidth: float = 0.5,
    eps: float = 1e-5,
    max_points: int | None = None,
    sampling: str = "random",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """-log CX(x, y), averaged over the batch: near 0 for identical sets of distinct points, blind to where points are.

    Repeated points (a uniform background gives many) share their similarity, so the loss of an image
    with itself is small but not exactly 0 there.
    """
    cx = contextual_similarity(x_features, y_features, bandwidth, eps, max_points, sampling, generator)
    return -torch.log(cx.clamp_min(1e-12)).mean()
