"""Bundle an exported MRI2MRI model: copy it into mrsynth/models and add or replace its registry entry.

The card (``mrsynth/models/NAME.md``) is written by hand from ``scripts/eval_mri2mri.py``'s numbers.

    PYTHONPATH=. python scripts/bundle_mri2mri.py runs/t1-to-t2/model.pt t1-to-t2
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mrsynth.checkpoint import read_checkpoint
from mrsynth.errors import MRSynthError
from mrsynth.models.bundling import install, register


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="exported model.pt of an MRI2MRI run")
    parser.add_argument("name", help="registry name; must be the checkpoint's own name")
    args = parser.parse_args()
    info = read_checkpoint(args.model)["info"]
    if info["name"] != args.name:
        raise MRSynthError(f"{args.model} is named {info['name']!r}, not {args.name!r}: train it with that name")
    entry = register(install(args.model), "contrast-synthesis")
    print(f"bundled {args.name}: {entry['size']} bytes, sha256 {entry['sha256']}")


if __name__ == "__main__":
    main()
