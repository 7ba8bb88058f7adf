"""Super-resolution on finer in-plane voxels than training's: the network at the input's voxel size or the model's.

A super-resolution model trained on 1 mm volumes sharpens structures by their size in voxels; real
thick-slice series often have 0.4-0.5 mm in-plane voxels. Each 1 mm volume (a held-out simulated
head, or a real scan) is resampled in-plane to ``--voxel`` mm (``superres.resample_in_plane``), made
thick x4 along SI and along AP by the training forward model, and brought back by tricubic
interpolation (TCI), by the network run on that grid ("native", ``mrsynth superres
--no-match-in-plane``) and by the network run at the model's in-plane voxel size with its residual
resampled back ("matched", the default). Scores inside the head against the resampled volume, as in
``scripts/eval_superres.py``; seconds are each method's wall time.

    PYTHONPATH=. python scripts/sr_in_plane.py --sim runs/sim/seg_14 --voxel 0.5 --threads 2 --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from eval_superres import crop_box, real_cases, score, sim_cases

from mrsynth.models import load_model
from mrsynth.sr_baselines import tricubic
from mrsynth.superres import in_plane_shape, resample_in_plane, superresolve_arrays
from mrsynth.thick_slices import AXIS_NAMES, make_thick

FACTOR = 4


def restore(
    model, thick: np.ndarray, head: np.ndarray, axis: int, n: int, scale: tuple[float, float] | None, cubic: bool
) -> np.ndarray:
    """The thin volume (``n`` slices along ``axis``): tricubic where ``cubic``, else the network (matched in-plane
    where ``scale`` is given)."""
    if cubic:
        return tricubic(thick, axis, FACTOR, n)
    keep = tuple(slice(0, n) if a == axis else slice(None) for a in range(3))
    return superresolve_arrays(model, [thick], axis, mask=head, in_plane_scale=scale)[0][0][keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="superres-x4-sim")
    parser.add_argument("--sim", nargs="*", default=[], help="folders written by 'mrsynth simulate' (T1w and T2w TSE)")
    parser.add_argument("--real", nargs="*", default=[], help="real 1 mm volumes")
    parser.add_argument("--voxel", type=float, default=0.5, help="in-plane voxel size (mm) to resample to")
    parser.add_argument("--axes", nargs="+", default=["SI", "AP"], choices=AXIS_NAMES)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    rows = []
    for name, volume, mask in sim_cases(args.sim) + real_cases(args.real):
        box = crop_box(mask)
        volume, mask = volume[box], mask[box]
        volume = volume / np.percentile(volume[mask], 99)
        for axis in (AXIS_NAMES.index(a) for a in args.axes):
            scale = tuple(args.voxel / model.info.voxel_size[a] for a in range(3) if a != axis)  # input over model
            shape = in_plane_shape(volume.shape, axis, (1 / scale[0], 1 / scale[1]))  # the 1 mm volume at --voxel
            truth = resample_in_plane(volume, shape)
            head = resample_in_plane(mask.astype(np.float32), shape, order=1) > 0.5
            n = truth.shape[axis]
            thick = make_thick(truth, axis, FACTOR)
            thick_head = make_thick(head.astype(np.float32), axis, FACTOR) > 0.5
            outs, seconds = {}, {}
            for method, matched in (("TCI", None), ("MRSR native", False), ("MRSR matched", True)):
                started = time.perf_counter()
                outs[method] = restore(model, thick, thick_head, axis, n, scale if matched else None, matched is None)
                seconds[method] = time.perf_counter() - started
            scores = score(truth, head, outs)
            row = {"case": name, "axis": AXIS_NAMES[axis], "shape": list(truth.shape)}
            row |= {"scores": scores, "seconds": seconds}
            rows.append(row)
            print(name, AXIS_NAMES[axis], " ".join(
                f"{m}: {s['pSNR']:.2f} dB / {s['SSIM']:.4f} ({seconds[m]:.0f} s)" for m, s in row["scores"].items()),
                flush=True)  # fmt: skip
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump({"model": args.model, "voxel": args.voxel, "factor": FACTOR, "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
