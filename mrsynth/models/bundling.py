"""Bundling a trained checkpoint into the package: its file, and its registry entry.

Every bundling script (`scripts/bundle_*.py`, `scripts/eval_feature_encoder.py --bundle`) goes
through here, so entries are built one way from the checkpoint's own description, and a registry
that mrsynth would refuse is never written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..checkpoint import read_checkpoint
from ..files import atomic_path
from .registry import parse_registry, sha256_of

MODELS = Path(__file__).resolve().parent


def install(checkpoint: Path) -> Path:
    """Copy ``checkpoint`` into the package as ``<its name>.pt``; returns the bundled file."""
    target = MODELS / f"{read_checkpoint(checkpoint)['info']['name']}.pt"
    with atomic_path(target) as tmp:
        shutil.copyfile(checkpoint, tmp)
    return target


def register(
    target: Path, task: str, *, mode: str = "fast", licence: str = "Apache-2.0", extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Add or replace the registry entry of the bundled file ``target`` (its card ``<name>.md`` beside it)."""
    info = read_checkpoint(target)["info"]
    name = info["name"]
    outputs = info.get("outputs") or []
    entry = {
        "name": name,
        "version": str(info["version"]),
        "task": task,
        "inputs": info["inputs"],
        "output": info["output"],
        "voxel_size": info["voxel_size"],
        "orientation": "any",  # axes are read from the direction cosines
        "patch": info["patch"],
        "stride": info["stride"],
        "mode": mode,
        "file": target.name,
        "sha256": sha256_of(target),
        "size": target.stat().st_size,
        "licence": licence,
        "card": f"{name}.md",
        **({"outputs": outputs} if len(outputs) > 1 else {}),  # a multi-output model lists them all
    } | (extra or {})
    path = MODELS / "registry.json"
    registry = json.loads(path.read_text(encoding="utf-8"))
    names = [m["name"] for m in registry["models"]]
    if name in names:
        registry["models"][names.index(name)] = entry
    else:
        registry["models"].append(entry)
    parse_registry(registry, MODELS, str(path))
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(registry, indent=2) + "\n", encoding="utf-8")
    return entry
