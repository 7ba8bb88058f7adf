"""Preparation of a real training case (paper 000, sections II.B and II.E), and ``mrsynth prepare``.

The GE is registered to the TSE, never the other way round, so the training target keeps its
acquired voxels. The GE is then resampled (cubic B-spline) onto the intermediate grid (TSE in-plane
spacing, a quarter of the TSE slice spacing along LR: High-to-low) or onto the TSE grid
(Low-to-low). Voxels that the transform maps outside the GE's field of view are set to -1
(``masks.OUTSIDE``) and left out of the sampling mask; negative values from the B-spline
interpolation are set to 0; both images are divided by their 99th percentile inside the sampling
mask, and those percentiles are stored in ``prepare.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .errors import MRSynthError
from .highlow import SLICE_FACTOR
from .masks import OUTSIDE, body_mask, check_mask, dilate_posterior, normalise_p99, sampling_mask
from .registration import Progress, Transform, apply_transform, register
from .volume_io import check_same_grid, from_paper, paper_index_axis, to_paper, write_volume

APPROACHES = ("high-to-low", "low-to-low")
DEFAULT_PATCH = {"high-to-low": (56, 56, 32), "low-to-low": (56, 56, 8)}
DEFAULT_POSTERIOR_MM = 10.0


def intermediate_grid(tse: sitk.Image, factor: int = SLICE_FACTOR) -> sitk.Image:
    """The High-to-low input grid of a thick-slice TSE: ``factor`` slices per TSE slice along LR.

    It is the inverse of ``grids.thick_grid``: thick_grid(intermediate_grid(tse)) is tse's grid, so
    TSE slice j is the average position of high-resolution slices factor*j .. factor*j + factor - 1.
    """
    axis = paper_index_axis(tse, 2)
    size = list(tse.GetSize())
    size[axis] *= factor
    spacing = list(tse.GetSpacing())
    spacing[axis] /= factor
    index = [0.0, 0.0, 0.0]
    index[axis] = -(factor - 1) / (2 * factor)
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing(spacing)
    grid.SetDirection(tse.GetDirection())
    grid.SetOrigin(tse.TransformContinuousIndexToPhysicalPoint(index))
    return grid


@dataclass
class PreparedCase:
    """A training case on the chosen grid: normalised volumes, masks, the transform and what was done."""

    volumes: dict[str, sitk.Image]
    transform: Transform
    info: dict[str, Any] = field(default_factory=dict)


def _on_grid(mask_tse: np.ndarray, approach: str) -> np.ndarray:
    return np.repeat(mask_tse, SLICE_FACTOR, axis=2) if approach == "high-to-low" else mask_tse


def prepare_case(
    ge_aop: sitk.Image,
    ge_aip: sitk.Image,
    tse: sitk.Image,
    *,
    approach: str = "high-to-low",
    bone_mask: sitk.Image | None = None,
    preset: str | None = None,
    threshold: float | None = None,
    posterior_mm: float = DEFAULT_POSTERIOR_MM,
    patch: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> PreparedCase:
    """Register the GE echoes to the TSE and resample, mark, mask and normalise them for training.

    The body mask is made from the TSE (Otsu's threshold or ``threshold``, holes filled) and dilated
    by ``posterior_mm`` on the posterior side; it restricts the registration metric to the body
    and its back/table interface. The aIP echo is registered (``preset``: ``bspline-mi-rigidity``
    when a bone mask on the GE grid is given, else ``bspline-mi``) and the transform is applied to
    both echoes and the bone mask.
    """
    if approach not in APPROACHES:
        raise MRSynthError(f"unknown approach {approach!r}: use {' or '.join(APPROACHES)}")
    patch = tuple(DEFAULT_PATCH[approach] if patch is None else patch)
    check_same_grid({"GE aOP": ge_aop, "GE aIP": ge_aip})
    if bone_mask is not None:
        check_mask(bone_mask, ge_aip, "bone mask", binary=True)
    preset = preset or ("bspline-mi-rigidity" if bone_mask is not None else "bspline-mi")
    start = time.perf_counter()

    body_tse = dilate_posterior(body_mask(to_paper(tse), threshold), tse, posterior_mm)
    fixed_mask = from_paper(body_tse.astype(np.uint8), tse)
    found = register(
        tse,
        ge_aip,
        preset,
        fixed_mask=fixed_mask,
        rigidity_mask=bone_mask,
        names=("TSE", "GE aIP"),
        resample=False,  # resampled onto the output grid below
        progress=progress,
    )
    grid = intermediate_grid(tse) if approach == "high-to-low" else tse
    ones = sitk.Cast(ge_aip * 0 + 1, sitk.sitkFloat32)
    inside = to_paper(apply_transform(ones, found.transform, reference=grid, order=0)) > 0.5
    if not inside.any():
        raise MRSynthError("the registered GE covers none of the TSE's field of view: check the inputs")
    body = _on_grid(body_tse, approach) & inside
    sampling = sampling_mask(body, patch) & inside
    target_mask = (
        sampling.reshape(*sampling.shape[:2], -1, SLICE_FACTOR).any(-1) if approach == "high-to-low" else sampling
    )

    volumes: dict[str, sitk.Image] = {}
    scales: dict[str, float] = {}
    for name, echo in (("GE_aOP", ge_aop), ("GE_aIP", ge_aip)):
        array = np.maximum(to_paper(apply_transform(echo, found.transform, reference=grid, order=3)), 0)
        normalised, scales[name] = normalise_p99(array, sampling)
        volumes[name] = from_paper(np.where(inside, normalised, OUTSIDE).astype(np.float32), grid)
    normalised, scales["TSE_thick"] = normalise_p99(to_paper(tse), target_mask)
    volumes["TSE_thick"] = from_paper(normalised.astype(np.float32), tse)
    volumes["head_mask"] = from_paper(body.astype(np.uint8), grid)
    volumes["sampling_mask"] = from_paper(sampling.astype(np.uint8), grid)
    if bone_mask is not None:
        bone = to_paper(apply_transform(bone_mask, found.transform, reference=grid, order=0)) > 0.5
        volumes["bone_mask"] = from_paper(bone.astype(np.uint8), grid)
    info = {
        "approach": approach,
        "preset": preset,
        "registered": "GE_aIP to TSE (TSE not resampled); the transform is applied to GE_aOP and the bone mask",
        "p99": scales,
        "normalisation": "each volume divided by its p99 inside sampling_mask (TSE: its thick slices touching it)",
        "outside_value": OUTSIDE,
        "outside_voxels": int((~inside).sum()),
        "patch": list(patch),
        "posterior_dilation_mm": posterior_mm,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return PreparedCase(volumes=volumes, transform=found.transform, info=info)


def write_case(case: PreparedCase, out_dir: str | Path) -> Path:
    """Write a case folder atomically: everything goes into a temporary folder renamed at the end."""
    out_dir = Path(out_dir).absolute()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".part", dir=out_dir.parent))
    try:
        for name, image in case.volumes.items():
            write_volume(image, tmp / f"{name}.nii.gz")
        case.transform.save(tmp / "transform", named_as=out_dir / "transform")
        (tmp / "prepare.json").write_text(json.dumps(case.info, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            _remove_tree(tmp)
    return out_dir


def _remove_tree(folder: Path) -> None:
    for child in folder.iterdir():
        _remove_tree(child) if child.is_dir() else child.unlink()
    folder.rmdir()


def check_out_dir(path: str | Path) -> Path:
    """Fail before any work when the case folder cannot be written: it must be new or empty."""
    folder = Path(path)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise MRSynthError(f"--out-dir {folder} exists and is not empty: give a new folder")
    if not folder.absolute().parent.is_dir():
        raise MRSynthError(f"--out-dir {folder}: its parent folder does not exist: create it first")
    return folder


def add_prepare_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``mrsynth prepare`` on an ``argparse`` sub-parsers object."""
    parser = subparsers.add_parser(
        "prepare",
        help="prepare a real training case: register the GE to the TSE, resample, mask, normalise",
        description=(
            "Register the GE (aIP echo) to the TSE with elastix (the TSE is never resampled), resample both echoes "
            "onto the intermediate grid (high-to-low: TSE in-plane spacing, TSE slice spacing / 4 along LR) or the "
            "TSE grid (low-to-low), mark voxels pushed outside the GE's field of view with -1, set negative "
            "B-spline values to 0, and divide by the 99th percentile inside the sampling mask (paper 000). Writes "
            "GE_aOP, GE_aIP, TSE_thick, head_mask, sampling_mask, [bone_mask], transform/ and prepare.json: a "
            "folder 'mrsynth train' reads."
        ),
    )
    parser.add_argument("--ge-aop", required=True, help="GE almost opposed-phase echo")
    parser.add_argument("--ge-aip", required=True, help="GE almost in-phase echo (registered; same grid as aOP)")
    parser.add_argument("--tse", required=True, help="thick-slice TSE (the fixed image, never resampled)")
    parser.add_argument("--bone-mask", help="bone mask (0/1) on the GE grid: enables the rigidity penalty")
    parser.add_argument("--approach", choices=APPROACHES, required=True, help="which grid the GE goes onto")
    parser.add_argument("--out-dir", required=True, help="new (or empty) case folder")
    parser.add_argument("--preset", help="registration preset or parameter file (default: bspline-mi[-rigidity])")
    parser.add_argument("--threshold", type=float, help="body-mask threshold on the TSE (default: Otsu's)")
    parser.add_argument(
        "--posterior-dilation",
        type=float,
        default=DEFAULT_POSTERIOR_MM,
        metavar="MM",
        help="grow the body mask this far towards posterior (default: %(default)s)",
    )
    parser.add_argument(
        "--patch",
        nargs=3,
        type=int,
        metavar=("SI", "AP", "LR"),
        help="training patch size for the sampling mask, order SI AP LR (default: 56 56 32; low-to-low 56 56 8)",
    )
    parser.set_defaults(func=run_prepare)
    return parser


def run_prepare(args: argparse.Namespace) -> int:
    """Run ``mrsynth prepare``: check inputs and the output folder first, then work, then write atomically."""
    from tqdm import tqdm

    from .volume_io import read_labels, read_volume

    out_dir = check_out_dir(args.out_dir)
    ge_aop = read_volume(args.ge_aop, "--ge-aop")
    ge_aip = read_volume(args.ge_aip, "--ge-aip")
    tse = read_volume(args.tse, "--tse")
    check_same_grid({f"--ge-aop {args.ge_aop}": ge_aop, f"--ge-aip {args.ge_aip}": ge_aip})
    bone = None
    if args.bone_mask:
        bone = read_labels(args.bone_mask, "--bone-mask")
        check_mask(bone, ge_aip, f"--bone-mask {args.bone_mask}", binary=True)
    with tqdm(desc="registering GE to TSE", unit="resolution") as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        case = prepare_case(
            ge_aop,
            ge_aip,
            tse,
            approach=args.approach,
            bone_mask=bone,
            preset=args.preset,
            threshold=args.threshold,
            posterior_mm=args.posterior_dilation,
            patch=args.patch,
            progress=progress,
        )
    write_case(case, out_dir)
    print(f"wrote {out_dir} ({case.info['outside_voxels']} voxels outside the GE's field of view marked -1)")
    return 0
