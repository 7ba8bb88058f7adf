"""Demonstration of a CT -> T1w model on the real MRI-DIR phantom (one porcine object): not a result.

Steps: the phantom's T2 spin-echo is resampled to 1 mm isotropic (the model's voxel size); the CT is
registered to it rigidly with ``mrsynth register --preset rigid`` (elastix, mutual information);
``mrsynth synthesize MODEL`` turns the registered CT into a synthetic T1w; a figure shows the CT
(brain and wide windows), the synthetic T1w and the T2 on the middle slices. The model was trained
on simulated heads and outputs T1w, while the phantom's MR is T2-weighted: the figure shows what
the model does on real CT, not an accuracy.

    PYTHONPATH=. python scripts/ct2mr_phantom_demo.py --model ct-to-t1-sim --work /tmp/phantom \
        --figure docs/figures/ct2mr_phantom.png
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from mrsynth.ct import BRAIN_WINDOW, WIDE_WINDOW, window  # noqa: E402

PHANTOM = Path(__file__).resolve().parents[2] / "shared" / "data" / "mridir_phantom"
CT_FILE = "mridir_phantom_ct_binshrink2x2x1.nii.gz"
T2_FILE = "mridir_phantom_t2_2dse_binshrink2x2x1.nii.gz"


def isotropic(image: sitk.Image, spacing: float = 1.0) -> sitk.Image:
    size = [int(round(n * s / spacing)) for n, s in zip(image.GetSize(), image.GetSpacing(), strict=True)]
    return sitk.Resample(
        image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), [spacing] * 3, image.GetDirection(), 0.0
    )


def mrsynth(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "mrsynth", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ct-to-t1-sim")
    parser.add_argument("--work", required=True, help="folder for the intermediate volumes")
    parser.add_argument("--figure", required=True)
    parser.add_argument("--data", default=str(PHANTOM))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t2 = isotropic(sitk.ReadImage(str(Path(args.data) / T2_FILE), sitk.sitkFloat32))
    sitk.WriteImage(t2, str(work / "t2_1mm.nii.gz"))
    registered = work / "ct_on_t2.nii.gz"
    if not registered.exists():  # a rerun reuses the registration
        mrsynth("register", str(work / "t2_1mm.nii.gz"), str(Path(args.data) / CT_FILE), "--preset", "rigid",
                "--output", str(registered))  # fmt: skip
    # registration fills voxels outside the CT's field of view with exactly 0 (water in HU): make them air
    moved = sitk.ReadImage(str(registered))
    array = sitk.GetArrayFromImage(moved)
    array[array == 0.0] = -1000.0
    in_air = sitk.GetImageFromArray(array)
    in_air.CopyInformation(moved)
    registered = work / "ct_on_t2_air_outside.nii.gz"
    sitk.WriteImage(in_air, str(registered))
    synthetic = work / "synthetic_t1w.nii.gz"
    mrsynth("synthesize", args.model, str(registered), "--output", str(synthetic), "--no-flip-average")
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(registered)))  # [z, y, x]
    syn = sitk.GetArrayFromImage(sitk.ReadImage(str(synthetic)))
    mr = sitk.GetArrayFromImage(t2)
    z = int(np.argmax((mr > np.percentile(mr, 90)).sum(axis=(1, 2))))
    panels = [
        (window(ct[z], *BRAIN_WINDOW), "CT, brain window (L40 W80)"),
        (window(ct[z], *WIDE_WINDOW), "CT, wide window (L0 W2000)"),
        (syn[z], f"synthetic T1w ({args.model})"),
        (mr[z], "real T2 spin echo (not T1w)"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(14, 4))
    for ax, (image, title) in zip(axes, panels, strict=True):
        high = np.percentile(image, 99.5) if image.max() > 1 else 1.0
        ax.imshow(image, cmap="gray", vmin=0, vmax=high)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(
        f"MRI-DIR porcine phantom (TCIA, CC BY 4.0; Ger et al.), slice z={z} of the 1 mm T2 grid: "
        "one object, a demonstration, not a result",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(args.figure, dpi=80)
    print(f"wrote {args.figure} (slice {z})")


if __name__ == "__main__":
    main()
