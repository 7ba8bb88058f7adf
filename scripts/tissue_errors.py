"""Where a synthesized image's error lies, tissue by tissue, on a simulated subject with known labels.

For each tissue of the simulator's table (the label map mapped through ``simulate.tissue_map``): its
voxels inside the mask, the mean of the truth, of the synthesized image and (with ``--thick``) of the
thick acquisition upsampled by cubic B-spline, each divided by its own 99th percentile inside the mask
as every score here is, with its standard deviation inside the tissue in brackets (speckle or blur
that the mean hides); and each tissue's share of the image's summed squared error. It answers
"which tissue makes a model lose to interpolation on this subject", which the global metrics cannot.

    python scripts/tissue_errors.py --output runs/demo_X/sTSE_HR.nii.gz \
        --reference runs/demo_X/subject/TSE_T2_HR.nii.gz --thick runs/demo_X/subject/TSE_T2_thick.nii.gz \
        --mask runs/demo_X/subject/head_mask.nii.gz --labels brainweb --atlas brainweb
"""

from __future__ import annotations

import argparse

import numpy as np
import SimpleITK as sitk

from mrsynth.baselines import bspline_upsample
from mrsynth.masks import normalise_p99
from mrsynth.simulate import bundled_phantom, load_spec, tissue_map, tissue_names


def on_grid(image: sitk.Image, grid: sitk.Image, interpolator: int) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.Resample(image, grid, sitk.Transform(), interpolator, 0.0))


def table(output: str, reference: str, mask: str, labels: str, atlas: str, thick: str | None) -> list[dict]:
    grid = sitk.ReadImage(reference, sitk.sitkFloat32)
    label_image = bundled_phantom() if labels == "brainweb" else sitk.ReadImage(labels)
    spec = load_spec()
    tissues = tissue_map(on_grid(label_image, grid, sitk.sitkNearestNeighbor), atlas, spec)
    inside = on_grid(sitk.ReadImage(mask), grid, sitk.sitkNearestNeighbor) > 0
    truth = normalise_p99(sitk.GetArrayFromImage(grid), inside)[0]
    images = {
        "model": normalise_p99(on_grid(sitk.ReadImage(output, sitk.sitkFloat32), grid, sitk.sitkLinear), inside)[0]
    }
    if thick:  # the same upsampling as the demo's and the model cards' baseline
        upsampled = sitk.GetArrayFromImage(bspline_upsample(sitk.ReadImage(thick, sitk.sitkFloat32), grid))
        images["cubic"] = normalise_p99(upsampled, inside)[0]
    totals = {name: float(((image - truth)[inside] ** 2).sum()) for name, image in images.items()}
    rows = []
    for index, name in enumerate(tissue_names(spec)):
        where = inside & (tissues == index)
        if not where.any():
            continue
        row = {"tissue": name, "voxels": int(where.sum())}
        for method, image in {"truth": truth, **images}.items():
            row[method] = float(image[where].mean())
            row[f"{method} sd"] = float(image[where].std())
        for method, image in images.items():
            row[f"{method} SSE share"] = float(((image - truth)[where] ** 2).sum()) / totals[method]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="the synthesized volume")
    parser.add_argument("--reference", required=True, help="the true high-resolution volume (its grid is used)")
    parser.add_argument("--mask", required=True, help="head mask")
    parser.add_argument("--labels", required=True, help="the subject's label map, or 'brainweb' (bundled phantom)")
    parser.add_argument("--atlas", required=True, choices=("brainweb", "synthseg"))
    parser.add_argument("--thick", help="the thick acquisition, to compare with its cubic B-spline upsampling")
    args = parser.parse_args()
    rows = table(args.output, args.reference, args.mask, args.labels, args.atlas, args.thick)
    methods = ["model"] + (["cubic"] if args.thick else [])
    print(
        "| tissue | voxels | truth | "
        + " | ".join(methods)
        + " | "
        + " | ".join(f"{m} SSE share" for m in methods)
        + " |"
    )
    print("|---|---|---|" + "---|" * (2 * len(methods)))
    for r in rows:
        means = " | ".join(f"{r[m]:.3f} ({r[f'{m} sd']:.3f})" for m in ["truth", *methods])
        shares = " | ".join(f"{r[f'{m} SSE share']:.2f}" for m in methods)
        print(f"| {r['tissue']} | {r['voxels']} | {means} | {shares} |")


if __name__ == "__main__":
    main()
