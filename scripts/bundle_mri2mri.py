"""Bundle an exported MRI2MRI model: copy it into mrsynth/models and add or replace its registry entry.

The card (``mrsynth/models/NAME.md``) is written by hand from ``scripts/eval_mri2mri.py``'s numbers.

    PYTHONPATH=. python scripts/bundle_mri2mri.py runs/t1-to-t2/model.pt t1-to-t2
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from mrsynth.checkpoint import read_checkpoint
from mrsynth.errors import MRSynthError
from mrsynth.files import atomic_path
from mrsynth.models import sha256_of

MODELS = Path(__file__).resolve().parents[1] / "mrsynth" / "models"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="exported model.pt of an MRI2MRI run")
    parser.add_argument("name", help="registry name; must be the checkpoint's own name")
    args = parser.parse_args()
    info = read_checkpoint(args.model)["info"]
    if info["name"] != args.name:
        raise MRSynthError(f"{args.model} is named {info['name']!r}, not {args.name!r}: train it with that name")
    target = MODELS / f"{args.name}.pt"
    with atomic_path(target) as tmp:
        shutil.copyfile(args.model, tmp)
    entry = {
        "name": args.name,
        "version": info["version"],
        "task": "contrast-synthesis",
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
        "card": f"{args.name}.md",
    }
    path = MODELS / "registry.json"
    registry = json.loads(path.read_text(encoding="utf-8"))
    registry["models"] = [m for m in registry["models"] if m["name"] != args.name] + [entry]
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(registry, indent=2) + "\n", encoding="utf-8")
    print(f"bundled {args.name}: {entry['size']} bytes, sha256 {entry['sha256']}")


if __name__ == "__main__":
    main()
