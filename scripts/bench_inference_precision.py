"""The bundled models' inference in bfloat16 against float32, side by side: time, difference, and accuracy.

``--precision bfloat16`` runs the network under ``torch.autocast`` (on a CPU too). For each case the
same library call a user's command makes (``synthesize`` or ``superresolve``, their defaults: full
context, flip averaging) runs in both precisions, alternating round by round; the median seconds and
their ratio are printed, with the largest and the mean difference between the two outputs (in units
of the float32 output's 99th percentile inside the head) and, where a truth exists, each output's
PSNR against it inside the head (both scaled by the truth's 99th percentile there). Cases:

* ``gre-to-tse-sim`` on a simulated case's GE pair, against its true high-resolution TSE;
* ``superres-x4-sim`` on a simulated case's true T1w TSE made thick x4 along SI, against that truth;
* ``superres-x4-sim`` on a real thick-slice series (no truth).

    PYTHONPATH=. python scripts/bench_inference_precision.py --synthesis-case runs/sim/brainweb \\
        --superres-case runs/sim/seg_14 --real ../shared/data/tcga_du7294_native/TCGA-DU-7294_native_hdbet_t1.nii.gz
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from mrsynth.inference import InferenceOptions
from mrsynth.metrics import psnr
from mrsynth.models import load_model
from mrsynth.superres import simulate_thick, superresolve
from mrsynth.synthesis import synthesize
from mrsynth.volume_io import read_volume

PRECISIONS = ("float32", "bfloat16")


def compare(
    name: str, run: Callable[[str], sitk.Image], truth: sitk.Image | None, head: np.ndarray, rounds: int
) -> None:
    """Time ``run`` in both precisions, alternating, and print how far the outputs are apart and from the truth."""
    times: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    outputs: dict[str, np.ndarray] = {}
    for r in range(rounds):
        for precision in PRECISIONS if r % 2 == 0 else reversed(PRECISIONS):
            started = time.perf_counter()
            image = run(precision)
            times[precision].append(time.perf_counter() - started)
            outputs[precision] = sitk.GetArrayFromImage(image).astype(np.float64)
    # a thin grid made from thick slices can be a few slices longer than the truth: compare the common part
    common = tuple(slice(0, min(n, m)) for n, m in zip(outputs["float32"].shape, head.shape, strict=True))
    exact, reduced, head = outputs["float32"][common], outputs["bfloat16"][common], head[common]
    scale = np.percentile(exact[head], 99)
    difference = np.abs(exact - reduced)[head] / scale
    slow, fast = (float(np.median(times[p])) for p in PRECISIONS)
    line = (
        f"{name}: float32 {slow:.1f} s, bfloat16 {fast:.1f} s (medians of {rounds}), ratio {slow / fast:.2f}x; "
        f"|difference| max {difference.max():.4f}, mean {difference.mean():.5f} (of the 99th percentile)"
    )
    if truth is not None:
        reference = sitk.GetArrayFromImage(truth).astype(np.float64)[common]
        level = np.percentile(reference[head], 99)
        scores = [psnr(o / np.percentile(o[head], 99), reference / level, head) for o in (exact, reduced)]
        line += f"; PSNR against the truth {scores[0]:.3f} / {scores[1]:.3f} dB"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthesis-case", type=Path, help="a simulated case folder (GE_aOP, GE_aIP, TSE_HR)")
    parser.add_argument("--superres-case", type=Path, help="a simulated case folder (TSE_HR, head_mask)")
    parser.add_argument("--real", type=Path, help="a real thick-slice volume")
    parser.add_argument("--rounds", type=int, default=3, help="runs per precision, alternating")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.synthesis_case:
        case = args.synthesis_case
        model = load_model("gre-to-tse-sim", "cpu")
        images = [read_volume(case / f"{n}.nii.gz", n) for n in ("GE_aOP", "GE_aIP")]
        mask = read_volume(case / "head_mask.nii.gz", "head mask", check=False)

        def synthesis(precision: str) -> sitk.Image:
            return synthesize(model, images, device="cpu", mask=mask, options=InferenceOptions(precision=precision)).hr

        head = sitk.GetArrayFromImage(mask) > 0
        compare(
            f"gre-to-tse-sim on {case.name}", synthesis, sitk.ReadImage(str(case / "TSE_HR.nii.gz")), head, args.rounds
        )
    superres = load_model("superres-x4-sim", "cpu")

    def superresolution(image: sitk.Image) -> Callable[[str], sitk.Image]:
        def run(precision: str) -> sitk.Image:
            options = InferenceOptions(precision=precision)
            return superresolve(superres, [image], device="cpu", options=options).outputs[0]

        return run

    if args.superres_case:
        case = args.superres_case
        truth = sitk.ReadImage(str(case / "TSE_HR.nii.gz"))
        head = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "head_mask.nii.gz"))) > 0
        thick = simulate_thick(truth, 4, "SI")
        compare(f"superres-x4-sim on {case.name}, thick x4 along SI", superresolution(thick), truth, head, args.rounds)
    if args.real:
        real = read_volume(args.real, "real thick series")
        exact = superresolution(real)("float32")
        array = sitk.GetArrayFromImage(exact)
        head = array > 0.05 * np.percentile(array, 99)  # skull-stripped: the brain is what is above background
        compare(f"superres-x4-sim on {args.real.name}", superresolution(real), None, head, args.rounds)


if __name__ == "__main__":
    main()
