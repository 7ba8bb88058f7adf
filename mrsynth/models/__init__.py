"""The model registry: every caller (CLI, Slicer modules, scripts) finds models by name through here.

A name resolves to its bundled file or a cached copy, each checked against the registry's sha256
before use; a user's own imported model is found in the cache by its name; a file path works as is.
Nothing is downloaded unless asked (``download=True`` or ``mrsynth models pull``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MRSynthError
from .cache import copies, user_models, verified_copy
from .download import Progress, pull
from .registry import RegistryEntry, registry, sha256_of

if TYPE_CHECKING:
    import torch

    from ..checkpoint import LoadedModel

__all__ = ["RegistryEntry", "load_model", "pull", "registry", "resolve", "sha256_of"]


def _registered_file(entry: RegistryEntry, download: bool, progress: Progress | None) -> Path:
    found = verified_copy(entry)
    if found is not None:
        return found
    if download:
        return pull(entry, progress=progress)
    damaged = copies(entry.name)
    if damaged:
        raise MRSynthError(
            f"the stored copy {damaged[0]} of model {entry.name} fails its sha256 check (damaged or another version): "
            f"run `mrsynth models pull {entry.name}` to replace it"
        )
    raise MRSynthError(
        f"model {entry.name} is not downloaded: run `mrsynth models pull {entry.name}` "
        "(or `mrsynth models import FILE` offline)"
    )


def resolve(name_or_path: str | Path, download: bool = False, progress: Progress | None = None) -> Path:
    """The checkpoint file for a registered name (verified), an existing file, or a user model in the cache."""
    entries = registry()
    key = str(name_or_path)
    if key in entries:
        return _registered_file(entries[key], download, progress)
    path = Path(name_or_path)
    if path.is_file():
        return path
    users = user_models(set(entries))
    if key in users:
        return users[key]
    known = ", ".join(sorted([*entries, *users])) or "none"
    raise MRSynthError(f"{name_or_path} is neither a known model ({known}) nor a checkpoint file: check the name")


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a registered model by name, a user model, or any checkpoint file (always ``weights_only``)."""
    from ..checkpoint import load_checkpoint

    loaded = load_checkpoint(resolve(name_or_path), device=device)
    entry = registry().get(str(name_or_path))
    outputs = list(loaded.info.outputs or [loaded.info.output])
    if entry is not None and (loaded.info.inputs, outputs) != (entry.inputs, entry.all_outputs):
        raise MRSynthError(
            f"the registry says model {entry.name} maps {entry.inputs} -> {entry.all_outputs} but its checkpoint "
            f"says {loaded.info.inputs} -> {outputs}: the registry entry is wrong, fix it"
        )
    return loaded
