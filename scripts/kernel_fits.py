"""Does the frozen-network kernel fit (paper 000, section II.E.6) reach its optimum? Table A1's solvers side by side.

For each model and each set of unseen simulated cases, the offset-0 kernel is fitted on the same frozen
patches (``kernel_training.frozen_outputs``: 64 patches, seed 0, as ``scripts/run_experiments.py``) by
the paper's Adam (1e-4, mini-batches of 16, from [1/2, 1/2, 0, 0], 10000 steps or ``--adam-steps``) and by
``kernel_training.exact_kernel`` (the L1 minimum itself), and compared with the simulator's slice
profile by the sum of absolute differences (SAD). Rows also fit the kernel exactly to the network run
on the left-right mirrored patches (mirrored back), to the mean of both (the flip averaging that
``synthesize`` applies by default) and to the true high-resolution TSE on the same patches:

    python scripts/kernel_fits.py --models gre-to-tse-sim gre-to-t2tse-sim \\
        --case-sets runs/sim/seg_14,runs/sim/seg_15 runs/sim/brainweb --json runs/kernel_fits.json

With ``--volumes`` a last row fits the kernel exactly, over every thick voxel of the head, to the
sTSE_HR that ``synthesize`` writes (its defaults: the whole volume in full context, flip-averaged),
the image a user gets, rather than to single patches (minutes per case on a CPU).

With ``--floor F`` two more rows fit the model's and the truth's kernels exactly over the thick voxels
whose true high-resolution signal (the mean of its four slices, p99 units) exceeds F. Why: the thick
target is a magnitude image, so where the signal is within a few noise sigmas of zero (air, bone, and
CSF in a T1w TSE) its Rician floor lifts every voxel alike, which no kernel can reproduce and which
pulls the fit towards equal weights. The voxels are chosen on the truth, never on the noisy target, so
the choice does not bias the fit. Every row also prints the kernel's sum: the images are scaled by
their own 99th percentiles, and a sum away from 1 is that scale, not the profile.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from mrsynth.checkpoint import LoadedModel
from mrsynth.data import Case
from mrsynth.files import atomic_path
from mrsynth.kernel_training import exact_kernel, fit_kernel, frozen_outputs
from mrsynth.masks import normalise_p99
from mrsynth.models import load_model
from mrsynth.simulate import load_spec, target_volumes
from mrsynth.synthesis import synthesize
from mrsynth.volume_io import read_volume, to_paper

PATCHES = 64


class Mirrored(torch.nn.Module):
    """The network run on its input mirrored along LR (the last axis), its output mirrored back."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x.flip(-1)).flip(-1)


def fits(
    model_name: str, case_set: list[str], volumes: bool, adam_steps: list[int], patches: int, floor: float | None
) -> dict[str, list[float]]:
    """Every kernel of one row group: the model's (two solvers, mirrored, flip-averaged) and the truth's."""
    model = load_model(model_name)
    thick, truth = target_volumes(model.info.output)
    cases = [Case.load(c, model.info.inputs, thick, "head_mask", model.info.patch) for c in case_set]
    outputs, targets = frozen_outputs(model, cases, 0, patches, 0, torch.device("cpu"))
    mirrored, _ = frozen_outputs(  # the same patches: the sampler's seed is the same
        replace(model, network=Mirrored(model.network)), cases, 0, patches, 0, torch.device("cpu")
    )
    # the same patches of the true HR TSE, passed through unchanged: what a perfect network would give
    truths = [Case.load(c, [truth], thick, "head_mask", model.info.patch) for c in case_set]
    true_hr, true_targets = frozen_outputs(
        replace(model, network=torch.nn.Identity()), truths, 0, patches, 0, torch.device("cpu")
    )
    result = {f"model, Adam (paper), {n} steps": list(fit_kernel(outputs, targets, iterations=n)) for n in adam_steps}
    result |= {
        "model, exact": list(exact_kernel(outputs, targets)),
        "model on mirrored patches, exact": list(exact_kernel(mirrored, targets)),
        "model, flip-averaged, exact": list(exact_kernel((outputs + mirrored) / 2, targets)),
        "true HR TSE, exact": list(exact_kernel(true_hr, true_targets)),
    }
    if floor is not None:
        # thick voxels whose true signal clears the Rician floor, as rows of 4 slices (the volumes' layout)
        keep = true_hr.unfold(-1, 4, 4).mean(-1).reshape(-1) > floor
        observed = true_targets.reshape(-1)[keep].reshape(1, -1)
        for label, images in (("model", outputs), ("true HR TSE", true_hr)):
            design = images.unfold(-1, 4, 4).reshape(-1, 4)[keep].reshape(1, -1)
            result[f"{label}, exact, true signal above {floor}"] = list(exact_kernel(design, observed))
    if volumes:
        pairs = [synthesized_and_thick(model, Path(c), thick) for c in case_set]
        design, observed = torch.cat([d for d, _ in pairs]), torch.cat([t for _, t in pairs])
        result["synthesized volume (synthesize's defaults), exact"] = list(
            exact_kernel(design.reshape(1, -1), observed.reshape(1, -1))  # each voxel's 4 slices in a row
        )
    return result


def synthesized_and_thick(model: LoadedModel, case: Path, thick: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The head's thick voxels: [N, 4] of the synthesized sTSE_HR and [N] of the thick target (p99 units)."""
    mask = read_volume(case / "head_mask.nii.gz", "head_mask", check=False)
    head = to_paper(mask) > 0
    images = [read_volume(case / f"{name}.nii.gz", name) for name in model.info.inputs]
    hr = to_paper(synthesize(model, images, device="cpu", mask=mask).hr)
    target = to_paper(read_volume(case / f"{thick}.nii.gz", thick))
    n = target.shape[-1]
    inside = head[..., : 4 * n].reshape(*head.shape[:2], n, 4).any(-1)
    target = normalise_p99(target, inside)[0]
    blocks = np.ascontiguousarray(hr[..., : 4 * n]).reshape(*hr.shape[:2], n, 4)
    return torch.from_numpy(blocks[inside]), torch.from_numpy(target[inside])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", required=True, help="registry names or checkpoint files")
    parser.add_argument("--case-sets", nargs="+", required=True, help="comma-separated case folders, one set each")
    parser.add_argument("--adam-steps", type=int, nargs="*", default=[10000], help="one Adam row per step count")
    parser.add_argument("--patches", type=int, default=PATCHES, help="frozen patches per fit (64: Table A1's)")
    parser.add_argument("--volumes", action="store_true", help="also fit to each case's whole synthesized sTSE_HR")
    parser.add_argument("--floor", type=float, help="also fit over thick voxels whose true signal exceeds this")
    parser.add_argument("--json", help="also write every kernel here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    profile = np.asarray(load_spec()["protocols"]["tse_t1"]["slice_profile"])
    rows = []
    table = ["| model | cases | kernel fit | w0 | w1 | w2 | w3 | sum | SAD |", "|---|---|---|---|---|---|---|---|---|"]
    for name in args.models:
        for case_set in args.case_sets:
            folders = case_set.split(",")
            names = "+".join(Path(f).name for f in folders)
            kernels = fits(name, folders, args.volumes, args.adam_steps, args.patches, args.floor)
            for label, kernel in kernels.items():
                sad = float(np.abs(np.asarray(kernel) - profile).sum())
                rows.append({"model": name, "cases": folders, "fit": label, "kernel": kernel, "sad": sad})
                weights = " | ".join(f"{w:.4f}" for w in kernel)
                table.append(f"| {Path(name).name} | {names} | {label} | {weights} | {sum(kernel):.4f} | {sad:.4f} |")
                print(table[-1], flush=True)
    print("\n".join(table))
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
