"""Self-describing model checkpoints.

A checkpoint holds everything needed to use a model without its training code: the architecture
and its arguments, the inputs in order, the output contrast, the voxel size it was trained on, the
patch, default stride and LR kernel, the normalisation, and where it came from. It contains only
tensors and plain Python values, so it loads with ``torch.load(..., weights_only=True)`` and no
code runs on load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .errors import MRSynthError
from .files import atomic_path
from .networks import build_network

FORMAT = "mrsynth-checkpoint"
FORMAT_VERSION = 1


P99_NORMALISATION: dict[str, Any] = {
    "method": "p99",
    "description": "each input divided by its 99th percentile inside the body mask; the output is in "
    "units of the target contrast's 99th percentile inside the body (1.0 = that percentile)",
}


@dataclass
class ModelInfo:
    """What a model is and how to use it (the non-weight part of a checkpoint).

    ``task`` is ``synthesis`` (contrast synthesis; older checkpoints, which lack the field) or
    ``super-resolution``; a super-resolution model also names its ``outputs`` (one per output
    channel) and the ``slice_axis`` it was trained for (``SI``/``AP``/``LR`` in the paper's axis
    names, or ``any``), and its ``slice_factor`` is the thick-to-thin ratio.
    """

    name: str
    architecture: str
    arguments: dict[str, Any]
    inputs: list[str]
    output: str
    voxel_size: list[float]
    patch: list[int]
    stride: list[int]
    approach: str = "high-to-low"
    slice_factor: int = 4
    lr_kernel: list[float] | None = None
    # kernels fitted with the network frozen (kernel_training), by patch configuration: LR offset as text
    trained_lr_kernels: dict[str, list[float]] = field(default_factory=dict)
    normalisation: dict[str, Any] = field(default_factory=lambda: dict(P99_NORMALISATION))
    version: str = "0"
    training: dict[str, Any] = field(default_factory=dict)
    task: str = "synthesis"
    outputs: list[str] | None = None
    slice_axis: str | None = None
    # acquisition parameters a conditioned model takes (name -> unit, min, max, scale; see acquisition.py)
    parameters: dict[str, dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def in_channels(self) -> int:
        """The network's input channels (an ensemble's are its members')."""
        arguments = self.arguments["members"][0]["arguments"] if "members" in self.arguments else self.arguments
        return int(arguments.get("in_channels", 1))


@dataclass
class LoadedModel:
    """A network ready for inference with its description."""

    network: nn.Module
    info: ModelInfo
    path: Path | None = None

    def check_inputs(self, count: int) -> None:
        if count != len(self.info.inputs):
            raise MRSynthError(
                f"model {self.info.name} takes {len(self.info.inputs)} inputs ({', '.join(self.info.inputs)}, "
                f"in this order) but {count} were given"
            )


def save_checkpoint(path: str | Path, network: nn.Module, info: ModelInfo, extra: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically; ``extra`` holds training state for resuming (optimizer, RNG...)."""
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mrsynth_version": __version__,
        "info": info.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in network.state_dict().items()},
    }
    if extra:
        payload["extra"] = extra
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint's raw content safely, turning every failure into a clear error."""
    path = Path(path)
    if not path.is_file():
        raise MRSynthError(f"checkpoint {path} does not exist: give a model name from 'mrsynth models list' or a file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to unpickle means the file is not a usable checkpoint
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MRSynthError(
            f"{path} is truncated or not an MRSynth checkpoint ({reason[:120]}): download or export it again"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MRSynthError(f"{path} is a PyTorch file but not an MRSynth checkpoint: export models with mrsynth train")
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise MRSynthError(f"{path} was written by a newer mrsynth ({payload.get('mrsynth_version')}): update mrsynth")
    return payload


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the network described by a checkpoint, in evaluation mode on ``device``."""
    payload = read_checkpoint(path)
    try:
        info = ModelInfo(**payload["info"])
    except TypeError as err:
        raise MRSynthError(f"{path} has an unreadable model description ({err}): export it again") from None
    network = build_network(info.architecture, info.arguments)
    try:
        network.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise MRSynthError(
            f"{path}: the weights do not fit architecture {info.architecture} with {info.arguments} "
            f"({str(err).splitlines()[0]}): the file is damaged or was edited"
        ) from None
    network.to(device).eval()
    return LoadedModel(network=network, info=info, path=Path(path))
