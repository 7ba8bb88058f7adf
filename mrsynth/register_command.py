"""Registration through a synthesized intermediary (paper 002, Fig. 2), and ``mrsynth register`` / ``transform``.

Mutual information between two contrasts can be pulled by features one contrast shows and the
other does not. Synthesizing the fixed image's contrast from the moving image turns the problem
into a mono-modal one, registered with normalised correlation; the transform found for the
synthetic image (which lies on the moving grid, voxel for voxel) is then applied to the original.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from .checkpoint import LoadedModel
from .errors import MRSynthError
from .files import atomic_path, check_output_path
from .masks import check_mask
from .registration import (
    PRESETS,
    Progress,
    Registration,
    Transform,
    apply_transform,
    check_registration,
    register,
)
from .volume_io import check_same_grid


@dataclass
class ViaModelRegistration(Registration):
    """A registration found on a synthetic image; ``image`` is the original moving image resampled."""

    synthetic: sitk.Image | None = None


def register_via_model(
    fixed: sitk.Image,
    moving: Sequence[sitk.Image],
    model: LoadedModel,
    preset: str = "rigid",
    *,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
    rigidity_mask: sitk.Image | None = None,
    device: str = "auto",
    progress: Progress | None = None,
) -> ViaModelRegistration:
    """Register ``moving`` (the model's inputs, in its order, on one grid) to ``fixed`` through a synthetic image.

    Any registered model or checkpoint whose number of inputs matches can serve; it should
    synthesize the fixed image's contrast. The first moving image is the one resampled.
    """
    from .synthesis import synthesize

    model.check_inputs(len(moving))
    synthetic = synthesize(model, moving, device=device, mask=moving_mask).hr
    found = register(
        fixed,
        synthetic,
        preset,
        resample=False,
        fixed_mask=fixed_mask,
        moving_mask=moving_mask,
        rigidity_mask=rigidity_mask,
        metric="ncc",
        names=("fixed image", f"image synthesized by {model.info.name}"),
        progress=progress,
    )
    image = apply_transform(moving[0], found.transform)
    return ViaModelRegistration(image=image, transform=found.transform, synthetic=synthetic)


def add_register_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``mrsynth register`` on an ``argparse`` sub-parsers object."""
    parser = subparsers.add_parser(
        "register",
        help="register a moving image to a fixed image with elastix (presets or a parameter file)",
        description=(
            "Register MOVING to FIXED with elastix and write MOVING resampled onto FIXED's grid (FIXED itself is "
            "never resampled). Presets are plain elastix parameter files inside the package (SlicerElastix reads "
            "them too): translation, rigid, affine, bspline-mi (translation, then a multi-resolution B-spline with "
            "Mattes mutual information) and bspline-mi-rigidity (the same with elastix's rigidity penalty on the "
            "bone mask, paper 000). With --via-model, MOVING are the model's inputs: the model synthesizes FIXED's "
            "contrast from them, that synthetic image is registered with normalised correlation, and the transform "
            "is applied to the first MOVING (paper 002)."
        ),
    )
    parser.add_argument("fixed", metavar="FIXED", help="fixed image (NIfTI, NRRD, MHA or DICOM folder)")
    parser.add_argument(
        "moving", metavar="MOVING", nargs="+", help="moving image; with --via-model, the model's inputs in its order"
    )
    parser.add_argument("--output", required=True, help="the first MOVING resampled onto FIXED's grid")
    parser.add_argument(
        "--preset",
        default="bspline-mi",
        help=f"{', '.join(PRESETS)}, or an elastix parameter file (default: %(default)s)",
    )
    parser.add_argument("--fixed-mask", help="where the metric samples the fixed image (voxels > 0; FIXED's grid)")
    parser.add_argument("--moving-mask", help="where the metric samples the moving image (voxels > 0; MOVING's grid)")
    parser.add_argument(
        "--rigidity-mask", metavar="BONE", help="bone mask (0/1) on MOVING's grid, for bspline-mi-rigidity"
    )
    parser.add_argument("--transform-out", metavar="DIR", help="new folder for the transform (elastix text files)")
    parser.add_argument("--via-model", metavar="MODEL", help="register through an image this model synthesizes")
    parser.add_argument("--device", default="auto", help="--via-model: auto, cpu, cuda (default: %(default)s)")
    parser.set_defaults(func=run_register)
    return parser


def _check_transform_out(path: str | None) -> Path | None:
    if path is None:
        return None
    folder = Path(path)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise MRSynthError(f"--transform-out {folder} exists and is not empty: give a new folder")
    if not folder.absolute().parent.is_dir():
        raise MRSynthError(f"--transform-out {folder}: its parent folder does not exist: create it first")
    return folder


def _read_mask(path: str | None, reference: sitk.Image, option: str, binary: bool = False) -> sitk.Image | None:
    from .volume_io import read_labels

    if path is None:
        return None
    mask = read_labels(path, option)
    check_mask(mask, reference, f"{option} {path}", binary)
    return mask


def run_register(args: argparse.Namespace) -> int:
    """Run ``mrsynth register``: check every input first, then register, then write atomically."""
    from tqdm import tqdm

    from .volume_io import read_volume

    output = check_output_path(args.output)
    transform_out = _check_transform_out(args.transform_out)
    if args.via_model is None and len(args.moving) > 1:
        raise MRSynthError("give one MOVING image (several only with --via-model, as the model's inputs)")
    fixed = read_volume(args.fixed, "FIXED")
    moving = [read_volume(path, "MOVING") for path in args.moving]
    check_same_grid({f"MOVING {path}": image for path, image in zip(args.moving, moving)})
    masks = {
        "fixed_mask": _read_mask(args.fixed_mask, fixed, "--fixed-mask"),
        "moving_mask": _read_mask(args.moving_mask, moving[0], "--moving-mask"),
        "rigidity_mask": _read_mask(args.rigidity_mask, moving[0], "--rigidity-mask", binary=True),
    }
    names = (f"FIXED {args.fixed}", f"MOVING {args.moving[0]}")
    check_registration(fixed, moving[0], args.preset, names=names, **masks)  # before the progress bar opens
    with tqdm(desc=f"registering ({args.preset})", unit="resolution") as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        if args.via_model is not None:
            from .models import load_model

            model = load_model(args.via_model)
            model.check_inputs(len(moving))
            result = register_via_model(
                fixed, moving, model, args.preset, device=args.device, progress=progress, **masks
            )
        else:
            result = register(fixed, moving[0], args.preset, names=names, progress=progress, **masks)
    with atomic_path(output) as tmp:
        sitk.WriteImage(result.image, str(tmp), useCompression=True)
        if transform_out is not None:
            result.transform.save(transform_out)
    print(f"wrote {output}" + (f" and the transform in {transform_out}" if transform_out else ""))
    return 0


def add_transform_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``mrsynth transform`` (transformix) on an ``argparse`` sub-parsers object."""
    parser = subparsers.add_parser(
        "transform",
        help="apply a saved registration transform to another image (a mask, the other echo)",
        description="Resample IMAGE (on the registration's moving grid) through a transform folder written by "
        "'mrsynth register --transform-out', onto the fixed image's grid (or --reference's).",
    )
    parser.add_argument("image", metavar="IMAGE", help="image on the moving image's grid")
    parser.add_argument("--transform", required=True, metavar="DIR", help="transform folder")
    parser.add_argument("--output", required=True, help="resampled image")
    parser.add_argument("--reference", help="image whose grid the output takes (default: the registration's fixed)")
    parser.add_argument(
        "--nearest", action="store_true", help="nearest-neighbour interpolation, for masks and label maps"
    )
    parser.set_defaults(func=run_transform)
    return parser


def run_transform(args: argparse.Namespace) -> int:
    """Run ``mrsynth transform``."""
    from .volume_io import read_labels, read_volume

    output = check_output_path(args.output)
    transform = Transform.load(args.transform)
    image = read_labels(args.image, "IMAGE") if args.nearest else read_volume(args.image, "IMAGE")
    reference = read_volume(args.reference, "--reference", check=False) if args.reference else None
    out = apply_transform(image, transform, reference=reference, order=0 if args.nearest else 3)
    if args.nearest:
        out = sitk.Cast(out, image.GetPixelID())
    with atomic_path(output) as tmp:
        sitk.WriteImage(out, str(tmp), useCompression=True)
    print(f"wrote {output}")
    return 0
