"""Apply a super-resolution model to thick-slice volumes, and the ``mrsynth superres`` command.

A separate command rather than a mode of ``mrsynth synthesize``: synthesis keeps the input grid and
has one output (plus High-to-low's thick one), while super-resolution changes the grid (thick ->
thin along the slice axis read from the geometry), may have one output per input contrast, and
returns intensities in the input's own units (needed for quantitative maps such as DESS T2). The
engine is the same (``inference.infer``, full-context by default: MRSR has a small receptive field).

Each input is divided by its 99th percentile inside the body (Otsu mask of the first input, or
``mask``), interpolated onto the thin grid (cubic B-spline along the slice axis, the network's
training input), turned so that its slice axis is the first (``NETWORK_SLICE_AXIS``: the network is
trained on one orientation of the task whatever the volume's slice axis), passed through the
network, turned back, and multiplied back by its percentile. The thin grid's
slices are ``slice_factor`` per thick slice, centred as ``thick_slices.thin_grid`` says.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .checkpoint import LoadedModel
from .errors import MRSynthError
from .files import atomic_path
from .inference import PRECISIONS, InferenceOptions, InferenceReport, Progress, infer, resolve_device
from .masks import body_mask, normalise_p99
from .thick_slices import (
    AXIS_NAMES,
    NETWORK_SLICE_AXIS,
    back_project,
    make_thick,
    parse_axis,
    slice_axis_of,
    thick_image,
    thin_grid,
    to_thin,
)
from .tiling import DEFAULT_MEMORY_GB
from .volume_io import check_same_grid, from_paper, paper_spacing, to_paper

VOXEL_SIZE_TOLERANCE = 0.5  # relative difference from the model's voxel size above which a result is warned about
IN_PLANE_TOLERANCE = 0.1  # in-plane voxels this much finer than the model's: the network runs at the model's size


@dataclass
class SuperResolutionResult:
    """Super-resolved volumes (one per output), the cubic-interpolated inputs, and what the engine did."""

    outputs: list[sitk.Image]
    interpolated: list[sitk.Image]
    slice_axis: int
    reports: list[InferenceReport]
    in_plane_scale: tuple[float, float] | None = None  # input over model in-plane voxel size where matched


def check_model(model: LoadedModel) -> None:
    if model.info.task != "super-resolution":
        raise MRSynthError(
            f"model {model.info.name} is a {model.info.task} model, not a super-resolution one: "
            "use mrsynth synthesize with it, or give a super-resolution model"
        )


def _slice_axis(model: LoadedModel, image: sitk.Image, slice_axis: str | int | None) -> int:
    axis = slice_axis_of(image) if slice_axis is None else parse_axis(slice_axis)
    trained = model.info.slice_axis or "any"
    if trained != "any" and AXIS_NAMES[axis] not in trained.split(","):
        raise MRSynthError(
            f"model {model.info.name} was trained for thick slices along {trained}, the input's are along "
            f"{AXIS_NAMES[axis]}: use a model trained for any axis"
        )
    return axis


def superresolve(
    model: LoadedModel,
    images: list[sitk.Image],
    *,
    slice_axis: str | int | None = None,
    mask: np.ndarray | None = None,
    options: InferenceOptions | None = None,
    device: str = "auto",
    progress: Progress | None = None,
    flip_average: bool = True,
    in_plane_flip: bool = False,
    back_projections: int = 0,
    match_in_plane: bool = True,
) -> SuperResolutionResult:
    """Thick-slice volumes (same grid) -> thin-slice volumes on ``thin_grid``, in the inputs' units.

    ``flip_average`` also runs the volume mirrored along the slice axis (thick slices of a mirrored
    head are as plausible, and the thin grid mirrors onto itself) and averages the two passes.
    ``in_plane_flip`` doubles the passes with the volume mirrored along the in-plane axis that training
    mirrored (the network's last), so the output averages over the augmentation the network learnt.
    ``back_projections`` passes of ``thick_slices.back_project`` then make each output consistent
    with its thick input under the training forward model (0: the network's output as it is).
    ``match_in_plane``: where the in-plane voxels are finer than the model's by more than
    ``IN_PLANE_TOLERANCE``, the network runs at the model's in-plane voxel size and its residual is
    brought back (``superresolve_arrays``' ``in_plane_scale``): a network of small receptive field
    sharpens structures by their size in voxels, so on 0.5 mm voxels every structure looks twice as
    wide to one trained on 1 mm (docs/superresolution.md, "In-plane voxel size").
    """
    check_model(model)
    if not images:
        raise MRSynthError("no input volume: give one or more thick-slice volumes")
    check_same_grid({f"input {i + 1}": image for i, image in enumerate(images)})
    channels = model.info.in_channels
    if channels not in (1, len(images)):
        raise MRSynthError(
            f"model {model.info.name} takes {channels} contrasts at once ({', '.join(model.info.inputs)}) but "
            f"{len(images)} volumes were given"
        )
    axis = _slice_axis(model, images[0], slice_axis)
    grid = thin_grid(images[0], int(model.info.slice_factor), axis)
    scale = in_plane_mismatch(grid, model, axis) if match_in_plane else None
    plane = [a for a in range(3) if a != axis]
    _warn_voxel_size(grid, model, [a for a, k in zip(plane, scale or (1.0, 1.0), strict=True) if k != 1.0])
    outputs, interpolated, reports = superresolve_arrays(
        model,
        [to_paper(image) for image in images],
        axis,
        mask=mask,
        options=options,
        device=device,
        progress=progress,
        flip_average=flip_average,
        in_plane_flip=in_plane_flip,
        back_projections=back_projections,
        in_plane_scale=scale,
    )
    return SuperResolutionResult(
        outputs=[from_paper(o.astype(np.float32), grid) for o in outputs],
        interpolated=[from_paper(i.astype(np.float32), grid) for i in interpolated],
        slice_axis=axis,
        reports=reports,
        in_plane_scale=scale,
    )


def superresolve_arrays(
    model: LoadedModel,
    arrays: list[np.ndarray],
    axis: int,
    *,
    mask: np.ndarray | None = None,
    options: InferenceOptions | None = None,
    device: str = "auto",
    progress: Progress | None = None,
    flip_average: bool = True,
    in_plane_flip: bool = False,
    back_projections: int = 0,
    in_plane_scale: tuple[float, float] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[InferenceReport]]:
    """Paper-order thick arrays -> (super-resolved, cubic-interpolated) thin arrays, in the arrays' units.

    ``in_plane_scale``: the arrays' in-plane voxel size over the model's, for the two axes other than
    ``axis`` in paper order. Where it is given, the network runs on the arrays resampled in-plane to
    the model's voxel size (``resample_in_plane``) and its residual (what it adds to its cubic
    input) is resampled back and added to the arrays' own cubic interpolation: the network sees
    structures at the size it was trained on, and the output keeps the input's in-plane detail.
    """
    if back_projections < 0:
        raise MRSynthError(f"back-projection passes {back_projections} is negative: give 0 (none) or more")
    if in_plane_scale is not None:
        factor = int(model.info.slice_factor)
        shape = in_plane_shape(arrays[0].shape, axis, in_plane_scale)
        coarse = [resample_in_plane(a, shape) for a in arrays]
        coarse_mask = None if mask is None else resample_in_plane(np.asarray(mask, np.float32), shape, order=1) > 0.5
        outputs, interpolated, reports = superresolve_arrays(
            model, coarse, axis, mask=coarse_mask, options=options, device=device, progress=progress,
            flip_average=flip_average, in_plane_flip=in_plane_flip,
        )  # fmt: skip
        native = [to_thin(a, axis, factor) for a in arrays]
        outputs = [n + resample_in_plane(o - i, n.shape) for n, o, i in zip(native, outputs, interpolated, strict=True)]
        if back_projections:
            outputs = [back_project(o, a, axis, factor, back_projections) for o, a in zip(outputs, arrays)]
        return outputs, native, reports
    channels = model.info.in_channels
    factor = int(model.info.slice_factor)
    body = body_mask(arrays[0]) if mask is None else np.asarray(mask, dtype=bool)
    scaled = [normalise_p99(a, body) for a in arrays]
    low = np.stack([to_thin(a, axis, factor) for a, _ in scaled])
    options = options or InferenceOptions()
    device = resolve_device(device)
    network = model.network.to(device).eval()
    groups = [list(range(len(arrays)))] if channels == len(arrays) else [[i] for i in range(len(arrays))]
    outputs, reports = [], []
    turned = np.moveaxis(low, axis + 1, NETWORK_SLICE_AXIS + 1)
    # mirrored axes of each pass: the slice axis (flip_average) and the network's last axis (in_plane_flip)
    slice_flips = ((), (NETWORK_SLICE_AXIS + 1,)) if flip_average else ((),)
    plane_flips = ((), (turned.ndim - 1,)) if in_plane_flip else ((),)
    runs = [(group, a + b) for group in groups for a in slice_flips for b in plane_flips]
    sums: dict[int, np.ndarray] = {}
    for done, (group, mirrored) in enumerate(runs):

        def report(step: int, total: int, done: int = done) -> None:
            if progress is not None:
                progress(step + done * total, len(runs) * total)

        x = np.flip(turned[group], mirrored) if mirrored else turned[group]
        run = infer(np.ascontiguousarray(x), network, options, patch=model.info.patch,
                    stride=model.info.stride, device=device, progress=report)  # fmt: skip
        hr = np.flip(run.hr, mirrored) if mirrored else run.hr
        for i, g in enumerate(group):
            sums[g] = sums.get(g, 0) + hr[i]
        reports.append(run.report)
    passes = len(slice_flips) * len(plane_flips)
    outputs = [np.moveaxis(sums[g] / passes, NETWORK_SLICE_AXIS, axis) * scaled[g][1] for g in range(len(arrays))]
    if back_projections:
        outputs = [back_project(o, a, axis, factor, back_projections) for o, a in zip(outputs, arrays)]
    return outputs, [low[i] * scaled[i][1] for i in range(len(arrays))], reports


def in_plane_shape(shape: tuple[int, ...], axis: int, scale: tuple[float, float]) -> tuple[int, ...]:
    """``shape`` with each in-plane size n turned into the count that spans the same extent at voxel size
    times ``scale`` (first and last voxel centres kept): round((n - 1) * scale) + 1, at least 2."""
    sizes = list(shape)
    for a, k in zip((a for a in range(3) if a != axis), scale, strict=True):
        sizes[a] = max(2, int(round((shape[a] - 1) * float(k))) + 1)
    return tuple(sizes)


def resample_in_plane(array: np.ndarray, shape: tuple[int, ...], order: int = 3) -> np.ndarray:
    """``array`` resampled to ``shape`` (first and last voxel centres kept), by cubic B-spline, after a
    Gaussian of sigma (f - 1) / 2 voxels along each axis shrunk by f > 1 so that the coarser grid does
    not alias (the axes whose size is unchanged, the slice axis, are left alone)."""
    array = np.asarray(array, dtype=np.float32)
    if tuple(shape) == array.shape:
        return array
    shrink = [n / m for n, m in zip(array.shape, shape, strict=True)]
    sigma = [max(0.0, (f - 1.0) / 2.0) for f in shrink]
    smooth = ndimage.gaussian_filter(array, sigma, mode="nearest") if any(sigma) else array
    zoom = [m / n for n, m in zip(array.shape, shape, strict=True)]  # grid_mode=False: corner centres kept
    return ndimage.zoom(smooth, zoom, order=order, mode="nearest", grid_mode=False).astype(np.float32)


def in_plane_mismatch(grid: sitk.Image, model: LoadedModel, axis: int) -> tuple[float, float] | None:
    """The thin grid's in-plane voxel size over the model's (paper order, the slice axis left out) along
    each in-plane axis finer than the model's by more than ``IN_PLANE_TOLERANCE`` (1 along the others),
    or None where neither is. Coarser axes are left alone: on 1.5 mm voxels running at the model's
    1 mm gained nothing and took longer (docs/superresolution.md, "In-plane voxel size")."""
    spacing, trained = np.array(paper_spacing(grid)), np.array(model.info.voxel_size, dtype=float)
    plane = [a for a in range(3) if a != axis]
    finer = [spacing[a] < (1.0 - IN_PLANE_TOLERANCE) * trained[a] for a in plane]
    if not any(finer):
        return None
    first, second = (float(spacing[a] / trained[a]) if f else 1.0 for a, f in zip(plane, finer, strict=True))
    return first, second


def _warn_voxel_size(grid: sitk.Image, model: LoadedModel, matched: list[int]) -> None:
    """Warn where the thin grid's voxel size differs from the model's along an axis the network does not
    run matched along (``matched``: the in-plane axes resampled to the model's voxel size)."""
    spacing, trained = np.array(paper_spacing(grid)), np.array(model.info.voxel_size, dtype=float)
    differs = np.abs(spacing - trained) > VOXEL_SIZE_TOLERANCE * trained
    differs[matched] = False
    if np.any(differs):
        warnings.warn(
            f"the super-resolved voxel size {tuple(round(float(v), 2) for v in spacing)} mm differs from the model's "
            f"training voxel size {tuple(round(float(v), 2) for v in trained)} mm (SI AP LR): results may be poorer "
            "than on its test data",
            stacklevel=2,
        )


def simulate_thick(image: sitk.Image, factor: int, slice_axis: str | int) -> sitk.Image:
    """A thin volume's thick-slice version by the forward model (for evaluation against the original)."""
    axis = parse_axis(slice_axis)
    return thick_image(make_thick(to_paper(image), axis, factor), image, factor, axis)


def add_superres_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "superres",
        help="turn thick-slice volumes into thin-slice ones with a super-resolution model",
        description="Super-resolve thick-slice volumes along their slice axis (read from the geometry: the axis "
        "with the largest spacing) with a super-resolution model (paper 003, MRSR). Outputs lie on the thin grid "
        "(the model's slice factor times more slices) in the inputs' units. --simulate-thick first makes thick "
        "slices from a thin volume with the training forward model (for testing on volumes with a known truth).",
    )
    parser.add_argument("model", help="model name (mrsynth models list) or checkpoint file")
    parser.add_argument("inputs", nargs="+", help="thick-slice volumes on one grid (several contrasts allowed)")
    parser.add_argument("--output", nargs="+", required=True, help="one output file per input")
    parser.add_argument("--interpolated", nargs="+", help="also write the cubic-interpolated inputs here")
    parser.add_argument("--slice-axis", help="SI, AP or LR (default: the axis with the largest spacing)")
    parser.add_argument("--simulate-thick", action="store_true", help="inputs are thin: make them thick first")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--memory", type=float, default=DEFAULT_MEMORY_GB, help="GB per tile (default 4)")
    parser.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        default="float32",
        help="run the network in bfloat16 (CPU or GPU) or float16 (GPU only) autocast: faster, outputs within "
        "about 1 %% of float32's (default: %(default)s)",
    )
    parser.add_argument(
        "--no-flip-average",
        dest="flip_average",
        action="store_false",
        help="one network pass instead of averaging it with the pass on the mirrored volume (twice as fast)",
    )
    parser.add_argument(
        "--in-plane-flip",
        action="store_true",
        help="also average the passes mirrored along the in-plane axis the network was trained mirrored along "
        "(twice the time)",
    )
    parser.add_argument(
        "--back-project",
        type=int,
        default=0,
        metavar="N",
        help="N passes of back-projection onto the thick input after the network (default 0): removes what the "
        "thick slices contradict; assumes the training forward model, so best for simulated thick slices",
    )
    parser.add_argument(
        "--no-match-in-plane",
        dest="match_in_plane",
        action="store_false",
        help="run the network at the input's own in-plane voxel size even where it is finer than the model's "
        "(by default the network runs at the model's and its residual is resampled back)",
    )
    parser.set_defaults(func=run_superres)
    return parser


def run_superres(args: argparse.Namespace) -> int:
    from .models import load_model
    from .synthesis import _check_output
    from .volume_io import read_volume

    outputs = [_check_output(p) for p in args.output]
    interpolated = [_check_output(p) for p in args.interpolated or []]
    for paths, what in ((outputs, "--output"), (interpolated or None, "--interpolated")):
        if paths is not None and len(paths) != len(args.inputs):
            raise MRSynthError(f"{what} names {len(paths)} files for {len(args.inputs)} inputs: give one per input")
    if args.simulate_thick and not args.slice_axis:
        raise MRSynthError("--simulate-thick needs --slice-axis (SI, AP or LR): thin volumes have no thick axis")
    model = load_model(args.model, args.device)
    check_model(model)
    images = [read_volume(p, f"input {i + 1}") for i, p in enumerate(args.inputs)]
    if args.simulate_thick:
        images = [simulate_thick(image, model.info.slice_factor, args.slice_axis) for image in images]
    result = superresolve(
        model,
        images,
        slice_axis=args.slice_axis,
        options=InferenceOptions(memory_gb=args.memory, precision=args.precision),
        device=args.device,
        flip_average=args.flip_average,
        in_plane_flip=args.in_plane_flip,
        back_projections=args.back_project,
        match_in_plane=args.match_in_plane,
    )
    for image, path in zip(result.outputs + result.interpolated, outputs + interpolated):
        with atomic_path(path) as tmp:
            sitk.WriteImage(image, str(tmp), useCompression=True)
    for report in result.reports:
        print(report.summary())
    if result.in_plane_scale:
        plane = " and ".join(AXIS_NAMES[a] for a in range(3) if a != result.slice_axis)
        print(f"network run at the model's in-plane voxel size ({plane} voxels x{result.in_plane_scale[0]:.3g}, "
              f"x{result.in_plane_scale[1]:.3g} of it; --no-match-in-plane runs it on the input's)")  # fmt: skip
    print(f"slice axis {AXIS_NAMES[result.slice_axis]}, x{model.info.slice_factor}; wrote {len(outputs)} volumes")
    return 0
