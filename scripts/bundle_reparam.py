"""Bundle a trained re-parameterisation model: weights and a registry entry that declares its parameters.

The entry's ``parameters`` (names, units, ranges, scales) come from the checkpoint itself, so the
registry and the network cannot disagree; the card (``mrsynth/models/<name>.md``) is written by
hand from the numbers of ``scripts/eval_reparam.py``. An entry of the same name is replaced.

    PYTHONPATH=. python scripts/bundle_reparam.py runs/reparam-default-sim/model.pt
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from mrsynth.checkpoint import read_checkpoint
from mrsynth.files import atomic_path
from mrsynth.models import sha256_of
from mrsynth.models.registry import parse_registry

MODELS = Path(__file__).resolve().parents[1] / "mrsynth" / "models"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="exported model.pt of a 'mrsynth train --task reparam' run")
    args = parser.parse_args()
    info = read_checkpoint(args.model)["info"]
    name = info["name"]
    target = MODELS / f"{name}.pt"
    shutil.copyfile(args.model, target)
    entry = {
        "name": name,
        "version": info["version"],
        "task": "contrast-synthesis",  # listed by the ContrastSynthesis module, which shows the parameter fields
        "inputs": info["inputs"],
        "output": info["output"],
        "voxel_size": info["voxel_size"],
        "orientation": "any",
        "patch": info["patch"],
        "stride": info["stride"],
        "mode": "fast",
        "file": target.name,
        "sha256": sha256_of(target),
        "size": target.stat().st_size,
        "licence": "Apache-2.0",
        "card": f"{name}.md",
        "parameters": info["parameters"],
    }
    path = MODELS / "registry.json"
    registry = json.loads(path.read_text(encoding="utf-8"))
    models = [m for m in registry["models"] if m["name"] != name] + [entry]
    registry["models"] = models
    parse_registry(registry, MODELS, str(path))
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(registry, indent=2) + "\n", encoding="utf-8")
    print(f"bundled {name}: {target} ({entry['size']} bytes, sha256 {entry['sha256']})")


if __name__ == "__main__":
    main()
