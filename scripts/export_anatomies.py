"""Write re-parameterisation anatomies (tissue indices and head masks of the training slices) as arrays.

Why: a machine without SimpleITK (a lent GPU machine, say) cannot read the label maps, but it can train
on these. ``mrsynth train --task reparam`` takes the ``.npz`` files wherever it takes label maps, with
the same ``atlas`` and ``slices`` (a mismatch is refused).

    PYTHONPATH=. python scripts/export_anatomies.py ../shared/data/synthseg_labels/training_seg_*.nii.gz \
        --atlas synthseg --slices 24 --out-dir ANATOMIES
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mrsynth.reparam_data import Anatomy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", nargs="+", help="label maps")
    parser.add_argument("--atlas", default="synthseg", help="the label maps' atlas (synthseg or brainweb)")
    parser.add_argument("--slices", type=int, default=24, help="axial slices per subject, as the training config")
    parser.add_argument("--out-dir", required=True, help="folder for the .npz files (made if missing)")
    args = parser.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for path in args.labels:
        anatomy = Anatomy.from_file(path, args.atlas, args.slices)
        target = out / (Path(path).name.removesuffix(".gz").removesuffix(".nii") + ".npz")
        anatomy.save(target, args.atlas, args.slices)
        print(f"{target}: {anatomy.tissues.shape[0]} slices of {anatomy.tissues.shape[1]} x {anatomy.tissues.shape[2]}")


if __name__ == "__main__":
    main()
