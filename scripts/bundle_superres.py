"""Bundle an exported super-resolution model: copy it into mrsynth/models and add or replace its registry entry.

The entry is listed by the SuperResolution module and by ``mrsynth models list``; the card
(``mrsynth/models/NAME.md``) is written by hand from ``scripts/eval_superres.py``'s numbers.

    PYTHONPATH=. python scripts/bundle_superres.py runs/superres-x4-sim-v1/model.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mrsynth.checkpoint import read_checkpoint
from mrsynth.errors import MRSynthError
from mrsynth.models.bundling import install, register


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="exported model.pt of a 'mrsynth train --task superres' run")
    args = parser.parse_args()
    task = read_checkpoint(args.model)["info"].get("task")
    if task != "super-resolution":
        raise MRSynthError(f"{args.model} is a {task} model, not a super-resolution one: give an MRSR run's model.pt")
    entry = register(install(args.model), "super-resolution")
    print(f"bundled {entry['name']}: {entry['size']} bytes, sha256 {entry['sha256']}")


if __name__ == "__main__":
    main()
