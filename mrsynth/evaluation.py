"""Evaluate a synthetic volume against its reference as paper 000 does (section II.F.2, Fig. 5).

MAE, mutual information (128 bins), SSIM (21x21x3 window along SI, AP, LR) and PSNR inside the body
mask and, if given, the bone mask, on intensity-normalised data; plus the relative-error and dSSIM
(1 - SSIM) maps on the reference grid. ``mrsynth evaluate`` is the command-line front end.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from . import metrics
from .errors import MRSynthError
from .figures import orient_for_display, save_figure
from .files import atomic_path, check_output_path
from .masks import body_mask, normalise_p99
from .volume_io import (
    AXIS_NAMES,
    check_same_grid,
    from_paper,
    paper_spacing,
    read_labels,
    read_volume,
    to_paper,
    write_volume,
)

NORMALISATIONS = {
    "p99": "each image divided by its own 99th percentile inside the body mask (paper 000, section II.B)",
    "none": "raw intensities, no normalisation",
}
MAP_FILES = {"re_map": "relative_error.nii.gz", "dssim_map": "dssim.nii.gz", "mask": "mask.nii.gz"}


@dataclass
class EvaluationResult:
    """Metrics per region ("body", and "bone" when a bone mask was given) and maps on the reference grid."""

    metrics: dict[str, dict[str, float]]
    re_map: sitk.Image
    dssim_map: sitk.Image
    mask: sitk.Image
    normalize: str
    window: tuple[int, int, int]
    data_range: float
    scales: dict[str, float] = field(default_factory=dict)
    mask_source: str = "given"

    def to_json(self) -> dict[str, Any]:
        """The JSON document: metrics plus everything needed to reproduce or compare them."""
        return {
            "metrics": {
                region: {key: _finite_or_none(value) for key, value in values.items()}
                for region, values in self.metrics.items()
            },
            "normalisation": {
                "method": self.normalize,
                "description": NORMALISATIONS[self.normalize],
                "p99": self.scales,
            },
            "mask": self.mask_source,
            "ssim": {
                "window": dict(zip(AXIS_NAMES, self.window, strict=True)),
                "K1": metrics.SSIM_K1,
                "K2": metrics.SSIM_K2,
                "data_range": self.data_range,
                "covariance": "sample, N/(N-1)",
                "boundary": "mirror reflection (edge voxel repeated)",
            },
            "mi": {"unit": "nats", "bins": metrics.MI_BINS},
            "psnr": {"unit": "dB", "data_range": self.data_range, "identical_images": "null (infinite)"},
        }


def _finite_or_none(value: float) -> float | None:
    """JSON has no infinity: PSNR of identical images is written as null."""
    return value if math.isfinite(value) else None


def _mask_array(image: sitk.Image, name: str) -> np.ndarray:
    array = to_paper(image) > 0
    if not array.any():
        raise MRSynthError(f"the {name} is empty (no voxel above 0): give a {name} that covers the region to evaluate")
    return array


def _finite(array: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isfinite(array)):
        raise MRSynthError(f"the {name} has NaN or Inf voxels: replace them (e.g. by 0) before evaluating")
    return array


def evaluate(
    pred: sitk.Image,
    reference: sitk.Image,
    mask: sitk.Image | None = None,
    bone_mask: sitk.Image | None = None,
    normalize: str = "p99",
    window: Sequence[int] = metrics.PAPER_WINDOW,
) -> EvaluationResult:
    """Compare ``pred`` with ``reference`` on their common grid.

    Without ``mask`` the body mask of the reference (Otsu, largest component, holes filled) is
    used. SSIM and PSNR use one data range, that of the normalised reference inside the body mask,
    for both regions, so the bone SSIM is the mean of the same SSIM map the dSSIM map shows.
    """
    if normalize not in NORMALISATIONS:
        raise MRSynthError(f"unknown normalisation {normalize!r}: use one of {', '.join(NORMALISATIONS)}")
    grids = {"reference": reference, "prediction": pred}
    if mask is not None:
        grids["mask"] = mask
    if bone_mask is not None:
        grids["bone mask"] = bone_mask
    check_same_grid(grids)
    ref = _finite(to_paper(reference), "reference")
    prd = _finite(to_paper(pred), "prediction")
    if mask is None:
        body = body_mask(ref)
        mask_source = "Otsu body mask of the reference"
    else:
        body = _mask_array(mask, "mask")
        mask_source = "given"
    regions = {"body": body}
    if bone_mask is not None:
        regions["bone"] = _mask_array(bone_mask, "bone mask")

    scales: dict[str, float] = {}
    if normalize == "p99":
        prd, scales["prediction"] = normalise_p99(prd, body)
        ref, scales["reference"] = normalise_p99(ref, body)
    body_ref = ref[body]
    data_range = float(body_ref.max()) - float(body_ref.min())
    if not data_range > 0:
        raise MRSynthError("the reference is constant inside the mask: SSIM and PSNR are undefined; check the mask")
    window = tuple(int(w) for w in window)
    ssim_values = metrics.ssim_map(prd, ref, window, data_range)

    results = {}
    for name, region in regions.items():
        results[name] = {
            "mae": metrics.mae(prd, ref, region),
            "mi": metrics.mutual_information(prd, ref, region),
            "ssim": float(np.mean(ssim_values[region])),
            "psnr": metrics.psnr(prd, ref, region, data_range),
            "voxels": int(np.count_nonzero(region)),
        }
    re_values = metrics.relative_error_map(prd, ref, mask=body)
    re_values[~body] = 0
    dssim = (1.0 - ssim_values).astype(np.float32)
    dssim[~body] = 0
    return EvaluationResult(
        metrics=results,
        re_map=from_paper(re_values, reference),
        dssim_map=from_paper(dssim, reference),
        mask=from_paper(body.astype(np.uint8), reference),
        normalize=normalize,
        window=window,  # type: ignore[arg-type]
        data_range=data_range,
        scales=scales,
        mask_source=mask_source,
    )


def write_outputs(
    result: EvaluationResult, maps_dir: str | Path | None = None, json_path: str | Path | None = None
) -> dict[str, Path]:
    """Write the maps (relative_error, dssim, mask .nii.gz) into ``maps_dir`` and the JSON, atomically."""
    written: dict[str, Path] = {}
    if maps_dir is not None:
        maps_dir = Path(maps_dir)
        if maps_dir.exists() and not maps_dir.is_dir():
            raise MRSynthError(f"maps folder {maps_dir} is a file: give a folder")
        maps_dir.mkdir(parents=True, exist_ok=True)
        for attribute, name in MAP_FILES.items():
            written[attribute] = write_volume(getattr(result, attribute), maps_dir / name)
    if json_path is not None:
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(result.to_json(), indent=2) + "\n")
        written["json"] = Path(json_path)
    return written


def save_evaluation_figure(
    path: str | Path,
    result: EvaluationResult,
    pred: sitk.Image,
    reference: sitk.Image,
    input_image: sitk.Image | None = None,
    attribution: str | None = None,
) -> Path:
    """Paper 000 Fig. 5 for one case: (input,) reference, prediction, RE and dSSIM in three slices."""
    images = {"input": input_image} if input_image is not None else {}
    images.update({"reference": reference, "prediction": pred, "RE": result.re_map, "dSSIM": result.dssim_map})
    check_same_grid(images)
    panels = {name: orient_for_display(to_paper(image), reference) for name, image in images.items()}
    mask = orient_for_display(to_paper(result.mask) > 0, reference)
    return save_figure(path, panels, paper_spacing(reference), mask=mask, attribution=attribution)


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``mrsynth evaluate`` on an ``argparse`` sub-parsers object."""
    parser = subparsers.add_parser(
        "evaluate",
        help="compare a synthetic volume with its reference (MAE, MI, SSIM, PSNR, error maps)",
        description=(
            "Compare PRED with REFERENCE as paper 000 does: MAE, mutual information (128 bins, nats), SSIM "
            "(box window, default 21 21 3 voxels along SI AP LR) and PSNR inside the body mask and the bone "
            "mask, on data divided by its 99th percentile in the body mask. Writes the relative-error and "
            "dSSIM (1 - SSIM) maps, a JSON report and a figure on request. All volumes must share one grid."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("pred", metavar="PRED", help="synthetic volume (NIfTI, NRRD, MHA or DICOM folder)")
    parser.add_argument("reference", metavar="REFERENCE", help="real acquisition the prediction should match")
    parser.add_argument("--mask", help="body mask (voxels > 0); default: Otsu body mask of the reference")
    parser.add_argument("--bone-mask", help="bone mask (voxels > 0) for the second set of metrics")
    parser.add_argument("--maps-dir", help="folder for relative_error.nii.gz, dssim.nii.gz and mask.nii.gz")
    parser.add_argument("--json", help="write the metrics and evaluation settings to this JSON file")
    parser.add_argument("--figure", help="write a PNG (or PDF, SVG) with sagittal, coronal and axial slices")
    parser.add_argument("--input", help="the network's input volume, shown as the figure's first row")
    parser.add_argument("--attribution", help="credit line printed under the figure (e.g. the data source)")
    parser.add_argument(
        "--normalize",
        choices=sorted(NORMALISATIONS),
        default="p99",
        help="intensity normalisation before the metrics",
    )
    parser.add_argument(
        "--window",
        nargs=3,
        type=int,
        metavar=("SI", "AP", "LR"),
        default=list(metrics.PAPER_WINDOW),
        help="SSIM window in voxels along superior-inferior, anterior-posterior, left-right (odd sizes)",
    )
    parser.set_defaults(func=run_evaluate)
    return parser


def format_table(result: EvaluationResult) -> str:
    """A short plain-text table of the metrics, one row per region."""
    lines = [f"{'region':<8}{'voxels':>10}{'MAE':>10}{'MI (nats)':>11}{'SSIM':>8}{'PSNR (dB)':>11}"]
    for region, values in result.metrics.items():
        lines.append(
            f"{region:<8}{values['voxels']:>10d}{values['mae']:>10.4f}{values['mi']:>11.4f}"
            f"{values['ssim']:>8.4f}{values['psnr']:>11.2f}"
        )
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``mrsynth evaluate``: check the output paths first, then read, evaluate, write and print."""
    for path in (args.json, args.figure):
        if path is not None:
            check_output_path(path)
    if args.maps_dir is not None and Path(args.maps_dir).exists() and not Path(args.maps_dir).is_dir():
        raise MRSynthError(f"maps folder {args.maps_dir} is a file: give a folder")
    pred = read_volume(args.pred, "prediction")
    reference = read_volume(args.reference, "reference")
    mask = read_labels(args.mask, "mask") if args.mask else None
    bone = read_labels(args.bone_mask, "bone mask") if args.bone_mask else None
    input_image = read_volume(args.input, "input") if args.input else None
    if input_image is not None:
        check_same_grid({"reference": reference, "input": input_image})
    result = evaluate(pred, reference, mask, bone, normalize=args.normalize, window=args.window)
    written = write_outputs(result, args.maps_dir, args.json)
    if args.figure:
        written["figure"] = save_evaluation_figure(args.figure, result, pred, reference, input_image, args.attribution)
    print(format_table(result))
    for path in written.values():
        print(f"wrote {path}")
    return 0
