"""The model registry: models are found by name, bundled files are verified by sha256 before use."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from ..checkpoint import LoadedModel, load_checkpoint
from ..errors import MRSynthError

_PACKAGE = "mrsynth.models"


@dataclass(frozen=True)
class RegistryEntry:
    """One registered model: what it does, and where its verified weights are."""

    name: str
    version: str
    task: str
    inputs: list[str]
    output: str
    voxel_size: list[float]
    file: str
    sha256: str
    size: int
    licence: str
    card: str  # file name of the model card (Markdown) beside the weights

    def path(self) -> Path:
        return Path(str(resources.files(_PACKAGE).joinpath(self.file)))

    def card_text(self) -> str:
        return resources.files(_PACKAGE).joinpath(self.card).read_text(encoding="utf-8")


def registry() -> dict[str, RegistryEntry]:
    """All registered models by name."""
    text = resources.files(_PACKAGE).joinpath("registry.json").read_text(encoding="utf-8")
    return {entry["name"]: RegistryEntry(**entry) for entry in json.loads(text)["models"]}


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(name_or_path: str | Path) -> Path:
    """The checkpoint file for a registered name (verified) or an existing file path."""
    entries = registry()
    if str(name_or_path) in entries:
        entry = entries[str(name_or_path)]
        path = entry.path()
        if not path.is_file():
            raise MRSynthError(f"model {entry.name} is registered but its file {path} is missing: reinstall mrsynth")
        if sha256_of(path) != entry.sha256:
            raise MRSynthError(f"model {entry.name}: {path} fails its sha256 check (damaged file): reinstall mrsynth")
        return path
    path = Path(name_or_path)
    if path.is_file():
        return path
    known = ", ".join(sorted(entries)) or "none"
    raise MRSynthError(f"{name_or_path} is neither a registered model ({known}) nor a checkpoint file: check the name")


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a registered model by name, or any checkpoint file."""
    return load_checkpoint(resolve(name_or_path), device=device)
