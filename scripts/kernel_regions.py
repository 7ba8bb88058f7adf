"""Where in the head does a High-to-low model's downsampling kernel come from? Kernel fits by region.

The check of paper 000's kernel training (its sum of absolute differences, SAD, from the simulator's
slice profile) fits one kernel over every thick voxel. This script fits it, as ``kernel_fits.py
--volumes`` does (exactly, L1, to the sTSE_HR that ``synthesize`` writes), over the whole head, over
the brain (grey and white matter and CSF: each thick voxel takes the tissue most of its 4 thin slices
have) and over the rest of the head, for the single pass and the flip-averaged one, and the same fits
to the true high-resolution TSE. Two more fits test the reading that the network's errors, which
differ from one LR slice to the next, act as noise on the regressors and flatten the kernel
(errors-in-variables): least squares with the mirrored pass as instruments for the plain one and the
reverse (instrumental variables remove the part of that flattening the two passes do not share).

    PYTHONPATH=. python scripts/kernel_regions.py --model gre-to-tse-sim --case runs/sim/brainweb \\
        --labels ../shared/data/brainweb/brainweb_crisp_labels_from_MRiLab.nii.gz --atlas brainweb
"""

from __future__ import annotations

import argparse

import numpy as np
import SimpleITK as sitk
import torch
from scipy import stats

from mrsynth.kernel_training import exact_kernel
from mrsynth.masks import normalise_p99
from mrsynth.models import load_model
from mrsynth.simulate import load_spec, target_volumes, tissue_map, tissue_names
from mrsynth.synthesis import synthesize
from mrsynth.volume_io import read_volume, to_paper

BRAIN = ("gm", "wm", "csf")


def exact(design: np.ndarray, observed: np.ndarray) -> tuple[float, ...]:
    """The L1 kernel over thick voxels: ``design`` [N, 4] holds each one's thin slices, ``observed`` [N]."""
    return exact_kernel(torch.from_numpy(design).reshape(1, -1), torch.from_numpy(observed)[None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="gre-to-tse-sim", help="a High-to-low model (name or file)")
    parser.add_argument("--case", required=True, help="a folder written by 'mrsynth simulate'")
    parser.add_argument("--labels", required=True, help="the label map the case was simulated from")
    parser.add_argument("--atlas", required=True, choices=("brainweb", "synthseg"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = load_spec()
    model = load_model(args.model)
    thick_name, truth_name = target_volumes(model.info.output)
    factor = len(spec["protocols"]["tse_t1"]["slice_profile"])
    profile = np.asarray(spec["protocols"]["tse_t1"]["slice_profile"])
    mask = read_volume(f"{args.case}/head_mask.nii.gz", "head_mask", check=False)
    head = to_paper(mask) > 0
    thick = to_paper(read_volume(f"{args.case}/{thick_name}.nii.gz", thick_name))
    n = thick.shape[-1]

    def blocks(array: np.ndarray) -> np.ndarray:  # [SI, AP, n, factor]: each thick voxel's thin slices
        return np.ascontiguousarray(array[..., : factor * n]).reshape(*array.shape[:2], n, factor).astype(np.float64)

    inside = head[..., : factor * n].reshape(*head.shape[:2], n, factor).any(-1)
    target = normalise_p99(thick, inside)[0].astype(np.float64)
    labels = sitk.Resample(sitk.ReadImage(args.labels), mask, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    majority = stats.mode(blocks(to_paper(labels)).astype(np.int64), axis=-1, keepdims=False).mode
    names = tissue_names(spec)
    brain = np.isin(tissue_map(majority, args.atlas, spec), [names.index(t) for t in BRAIN]) & inside
    images = [read_volume(f"{args.case}/{name}.nii.gz", name) for name in model.info.inputs]
    plain = blocks(to_paper(synthesize(model, images, device="cpu", mask=mask, flip_average=False).hr))
    averaged = blocks(to_paper(synthesize(model, images, device="cpu", mask=mask).hr))
    mirrored = 2 * averaged - plain  # the flip average is the mean of the plain and the mirrored pass
    truth = blocks(normalise_p99(to_paper(read_volume(f"{args.case}/{truth_name}.nii.gz", truth_name)), head)[0])

    print("| region | thick voxels | fit | w0 | w1 | w2 | w3 | SAD |\n|---|---|---|---|---|---|---|---|")
    for region, chosen in (("head", inside), ("brain", brain), ("head outside the brain", inside & ~brain)):
        y = target[chosen]
        fits = {
            "single pass, exact": exact(plain[chosen], y),
            "flip-averaged, exact": exact(averaged[chosen], y),
            "true HR TSE, exact": exact(truth[chosen], y),
            "single pass, mirrored pass as instruments": np.linalg.solve(
                mirrored[chosen].T @ plain[chosen], mirrored[chosen].T @ y
            ),
            "mirrored pass, single pass as instruments": np.linalg.solve(
                plain[chosen].T @ mirrored[chosen], plain[chosen].T @ y
            ),
        }
        for fit, kernel in fits.items():
            kernel = np.asarray(kernel)
            weights = " | ".join(f"{w:.4f}" for w in kernel)
            sad = np.abs(kernel - profile).sum()
            print(f"| {region} | {int(chosen.sum())} | {fit} | {weights} | {sad:.4f} |", flush=True)


if __name__ == "__main__":
    main()
