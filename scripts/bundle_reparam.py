"""Bundle a trained re-parameterisation model: weights and a registry entry that declares its parameters.

The entry's ``parameters`` (names, units, ranges, scales) come from the checkpoint itself, so the
registry and the network cannot disagree; the card (``mrsynth/models/<name>.md``) is written by
hand from the numbers of ``scripts/eval_reparam.py``. An entry of the same name is replaced.

    PYTHONPATH=. python scripts/bundle_reparam.py runs/reparam-default-sim/model.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mrsynth.checkpoint import read_checkpoint
from mrsynth.models.bundling import install, register


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="exported model.pt of a 'mrsynth train --task reparam' run")
    args = parser.parse_args()
    info = read_checkpoint(args.model)["info"]
    # contrast-synthesis: listed by the ContrastSynthesis module, which shows the parameter fields
    target = install(args.model)
    entry = register(target, "contrast-synthesis", extra={"parameters": info["parameters"]})
    name = entry["name"]
    print(f"bundled {name}: {target} ({entry['size']} bytes, sha256 {entry['sha256']})")


if __name__ == "__main__":
    main()
