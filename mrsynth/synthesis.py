"""Synthesize a contrast from volumes with a trained model, and the ``mrsynth synthesize`` command.

The network was trained on inputs divided by their 99th percentile inside the body mask (paper 000,
section II.B), so inputs are normalised the same way here. The output is *not* scaled back: the
target contrast was normalised the same way in training, so the output is in units of the target's
own 99th percentile inside the body (1.0 = that percentile), a scale that does not depend on the
inputs' arbitrary scanner units (see ``INTENSITY_UNIT``).
"""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .acquisition import check_values, condition_vector, parse_assignments
from .checkpoint import LoadedModel, ModelInfo
from .errors import MRSynthError
from .files import atomic_path, check_output_path, full_suffix
from .grids import thick_grid
from .highlow import LrKernels, mirrored_configurations, shift_kernel
from .inference import MODES, PRECISIONS, PRESETS, InferenceOptions, InferenceReport, Progress, infer, resolve_device
from .input_levels import input_levels, level_warning
from .masks import body_mask, normalise_p99
from .normalisation import METHOD as AFFINE_METHOD
from .normalisation import invariant_mask, normalise_affine, standardise
from .paramnet import BoundParamNet
from .reparam_chain import residual_transfer
from .tiling import DEFAULT_MEMORY_GB, check_stride
from .volume_io import check_same_grid, check_volume, from_paper, paper_spacing, to_paper

INTENSITY_UNIT = "1.0 = the 99th percentile of the target contrast inside the body, as in training"
VOXEL_SIZE_TOLERANCE = 0.2
OUTPUT_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


@dataclass
class SynthesisResult:
    """The synthetic volumes, the body mask used for normalisation and the inputs' scales."""

    hr: sitk.Image
    lr: sitk.Image | None
    mask: sitk.Image
    scales: list[float]
    reports: list[InferenceReport]
    intensity_unit: str = INTENSITY_UNIT
    levels: list[float] = field(default_factory=list)  # each normalised input's median in the mask


def input_names(info: ModelInfo) -> list[str]:
    """Names for messages, e.g. 'input 1 (GE_aOP)', in the model's input order."""
    return [f"input {i} ({name})" for i, name in enumerate(info.inputs, start=1)]


LR_SCHEMES = ("model", "trained", "four", "three", "shifted")
_SCHEME_OFFSETS = {"trained": (0,), "four": (0, 1, 2, -1), "three": (0, 1, 2), "shifted": (1,)}


def lr_kernels_for(info: ModelInfo, scheme: str = "model") -> dict[int, tuple[float, ...]] | None:
    """Kernels by patch configuration for sTSE_LR (section IV.C); None for models without sTSE_LR.

    ``model``: the checkpoint's kernel on configuration k (the paper's inference); ``trained``: the
    kernel trained with the network frozen (section II.E.6); ``four``: configurations k..k+3 each with
    its trained kernel (for LR stride 1); ``three``: the same without k+3; ``shifted``: the cheaper
    scheme, one kernel [a, b, c, d] trained on k+1 moved to [b, c, d, 0] for k+2 and [0, a, b, c] for k.
    """
    if scheme not in LR_SCHEMES:
        raise MRSynthError(f"unknown sTSE_LR kernel scheme {scheme!r}: use {', '.join(LR_SCHEMES)}")
    kernel = lr_kernel_of(info)
    if kernel is None:
        return None
    if scheme == "model":
        return {0: tuple(kernel)}
    trained = {int(offset): tuple(k) for offset, k in info.trained_lr_kernels.items()}
    missing = [o for o in _SCHEME_OFFSETS[scheme] if o not in trained]
    if missing:
        raise MRSynthError(
            f"model {info.name} has no trained kernel for LR offset(s) {missing} that scheme {scheme} needs: "
            f"run 'mrsynth train-kernel' with --offset {missing[0]} first"
        )
    if scheme == "shifted":
        base = trained[1]
        return {0: shift_kernel(base, -1), 1: base, 2: shift_kernel(base, 1)}
    return {offset: trained[offset] for offset in _SCHEME_OFFSETS[scheme]}


def lr_kernel_of(info: ModelInfo) -> list[float] | None:
    """The thick-slice kernel for sTSE_LR: the checkpoint's, or a plain average; None for Low-to-low."""
    if info.approach != "high-to-low":
        return None
    return list(info.lr_kernel) if info.lr_kernel is not None else [1 / info.slice_factor] * info.slice_factor


def _warn_voxel_size(image: sitk.Image, info: ModelInfo) -> None:
    spacing = paper_spacing(image)
    expected = info.voxel_size
    if any(abs(s - e) > VOXEL_SIZE_TOLERANCE * e for s, e in zip(spacing, expected, strict=True)):
        warnings.warn(
            f"input voxel size {tuple(round(s, 3) for s in spacing)} mm (SI, AP, LR) differs by more than "
            f"{VOXEL_SIZE_TOLERANCE:.0%} from the {tuple(expected)} mm model {info.name} was trained on: "
            "results may be poor; resample the inputs to the model's voxel size",
            stacklevel=3,
        )


def check_input_scales(info: ModelInfo, count: int, scales: Sequence[float] | None) -> None:
    """Refuse ``input_scales`` that cannot stand in for the inputs' 99th percentiles."""
    if scales is None:
        return
    method = info.normalisation.get("method", "p99")
    if method in ("none", AFFINE_METHOD):
        raise MRSynthError(
            f"model {info.name} does not divide its inputs by their 99th percentile ({method}): drop the input scales"
        )
    if len(scales) != count:
        raise MRSynthError(f"{len(scales)} input scales for {count} inputs: give one per input, in the inputs' order")
    bad = [s for s in scales if not (math.isfinite(s) and s > 0)]
    if bad:
        raise MRSynthError(f"input scales must be positive numbers (the inputs' 99th percentiles), not {bad}")


def synthesize(
    model: LoadedModel,
    images: Sequence[sitk.Image],
    *,
    options: InferenceOptions | None = None,
    device: str = "auto",
    mask: sitk.Image | None = None,
    flip_average: bool = True,
    lr_scheme: str = "model",
    progress: Progress | None = None,
    parameters: Mapping[str, float] | None = None,
    input_scales: Sequence[float] | None = None,
) -> SynthesisResult:
    """Run ``model`` on ``images`` (in the order of ``model.info.inputs``, all on one grid).

    Each input is divided by its own 99th percentile inside the body mask (``mask`` > 0, or the Otsu
    body mask of the last input), as in training. That percentile moves with the field of view, and
    a model that maps intensities nonlinearly (``gre-to-t2tse-sim``) follows it: ``input_scales``
    divides by these numbers instead, e.g. the ``scales`` of a whole-head scan of the same protocol
    for a scan that covers less. ``options`` choose how the engine covers the
    volume (default: the ``fast`` preset, full-context tiles; see ``inference.InferenceOptions``);
    a sliding ``stride`` of None is the model's own. With ``options.skip_background`` windows
    outside the same body mask are skipped.

    ``flip_average`` also runs the left-right mirrored volume and averages the two results: the LR
    flip is the augmentation the network was trained with, so both passes are valid predictions and
    their mean has less variance (on the BrainWeb test subject it raised SSIM by about 0.004). It
    doubles the compute; ``False`` gives the paper's single pass. ``lr_scheme`` picks the kernels
    that make sTSE_LR in the sliding mode (``lr_kernels_for``; full-context downsamples the fused HR
    with configuration k's kernel).

    ``hr`` lies on exactly the first input's grid. For High-to-low models ``lr`` lies on the thick
    grid (``grids.thick_grid``): when the LR length L is not a multiple of the slice factor the LR
    axis is reflect-padded at its end for the network and HR is cropped back, so LR has
    ceil(L / factor) thick slices, the last one partly made of mirrored slices. Output intensities
    are in the unit ``INTENSITY_UNIT``; ``scales`` are what the inputs were divided by.

    A model conditioned on acquisition parameters (``info.parameters``, e.g. TR and TE of a
    re-parameterisation model) needs every one in ``parameters`` (``acquisition.check_values``). A
    chained Param-to-Param model with ``residual_transfer`` in its normalisation also runs at its
    input's own setting, and what it misses there is carried over (``reparam_chain.residual_transfer``).
    """
    info = model.info
    torch_device = resolve_device(device)
    options = (options or InferenceOptions()).checked(torch_device)
    model.check_inputs(len(images))
    values = check_values(info.name, info.parameters, parameters or {})
    check_input_scales(info, len(images), input_scales)
    names = input_names(info)
    for name, image in zip(names, images, strict=True):
        check_volume(image, name)
    check_same_grid(dict(zip(names, images, strict=True)))
    kernel = lr_kernels_for(info, lr_scheme)
    factor = info.slice_factor
    if options.mode == "sliding":
        lr_factor = factor if kernel is not None else None
        check_stride(info.stride if options.stride is None else options.stride, info.patch, lr_factor)
    reference = images[0]
    _warn_voxel_size(reference, info)

    arrays = [to_paper(image) for image in images]
    affine = info.normalisation.get("method") == AFFINE_METHOD
    if mask is None:
        mask_array = invariant_mask(arrays[-1]) if affine else body_mask(arrays[-1])
    else:
        check_same_grid({names[0]: reference, "mask": mask})
        mask_array = to_paper(mask) > 0
    if info.normalisation.get("method") == "none":  # absolute units (CT in HU): the network takes them as they are
        normalised, scales = tuple(arrays), (1.0,) * len(arrays)
    elif affine:  # MRI2MRI models: offset and scale removed, so raw, rescaled and z-scored inputs agree
        normalised, fits = zip(*(normalise_affine(array, mask_array) for array in arrays), strict=True)
        scales = tuple(scale for _, scale in fits)
        histogram = info.normalisation.get("landmarks")
        if histogram:  # the training subjects' histogram landmarks, one list per input
            normalised = tuple(
                standardise(x, mask_array, reference)
                for x, reference in zip(normalised, histogram["reference"], strict=True)
            )
    elif input_scales is not None:
        scales = tuple(float(s) for s in input_scales)
        normalised = tuple(array / scale for array, scale in zip(arrays, scales, strict=True))
    else:
        normalised, scales = zip(*(normalise_p99(array, mask_array) for array in arrays), strict=True)
    levels = input_levels(normalised, mask_array)
    warning = level_warning(info, levels)  # None unless the model recorded its training levels
    if warning:
        warnings.warn(warning, stacklevel=2)
    x = np.stack(normalised).astype(np.float32)
    length = x.shape[-1]
    pad = (-length) % factor if kernel is not None else 0
    if pad:
        x = np.pad(x, [(0, 0)] * 3 + [(0, pad)], mode="reflect" if length > 1 else "edge")
        padded_mask = np.pad(mask_array, [(0, 0)] * 2 + [(0, pad)], mode="reflect" if length > 1 else "edge")
    else:
        padded_mask = mask_array

    def bound(settings: dict[str, float]) -> Any:
        network = model.network
        if settings:  # a 2D Param-Net, run slice by slice with its parameter values bound
            network = BoundParamNet(model.network, condition_vector(info.parameters, settings))
        return network.to(torch_device).eval()

    transfer = float(info.normalisation.get("residual_transfer", 0.0))
    passes = (2 if flip_average else 1) * (2 if transfer else 1)

    def run(network: Any, volume: np.ndarray, body: np.ndarray, lr_kernel: LrKernels | None, done_passes: int) -> Any:
        def report(done: int, total: int) -> None:
            if progress is not None:
                progress(done + done_passes * total, passes * total)

        return infer(
            volume,
            network,
            options,
            patch=info.patch,
            stride=info.stride,
            lr_kernel=lr_kernel,
            slice_factor=factor,
            mask=body,
            device=torch_device,
            progress=report,
        )

    def predict(network: Any, done_passes: int) -> tuple[np.ndarray, np.ndarray | None, list]:
        hr, lr, first = run(network, x, padded_mask, kernel, done_passes)
        reports = [first]
        if flip_average:
            # The mirrored pass: LR reversed (with the whole padded LR axis, so thick-slice groups stay
            # aligned), the kernel mirrored with it, and both outputs reversed back before averaging.
            mirrored_kernel = None if kernel is None else mirrored_configurations(kernel)
            hr_f, lr_f, second = run(
                network,
                np.ascontiguousarray(x[..., ::-1]),
                np.ascontiguousarray(padded_mask[..., ::-1]),
                mirrored_kernel,
                done_passes + 1,
            )
            reports.append(second)
            hr = (hr + hr_f[..., ::-1]) / 2
            lr = None if lr is None else (lr + lr_f[..., ::-1]) / 2
        return hr, lr, reports

    hr, lr, reports = predict(bound(values), 0)
    if transfer:  # a chained Param-to-Param model: also rendered at its input's own setting
        own = values | {"TR": values["input_TR"], "TE": values["input_TE"]}
        at_input, _, more = predict(bound(own), passes // 2)
        reports += more
        form = info.normalisation.get("residual_transfer_form", "slope")
        hr = residual_transfer(hr, at_input, x, padded_mask[None], transfer, form)
    if hr.shape[0] != 1:
        raise MRSynthError(f"model {info.name} gives {hr.shape[0]} output channels where 1 ({info.output}) is expected")
    if info.normalisation.get("output") == "p99":  # the output's scale follows the input's (tissue_maps): fix it
        hr = normalise_p99(hr[0, ..., :length], mask_array)[0][None]
    return SynthesisResult(
        hr=from_paper(hr[0, ..., :length], reference),
        lr=None if lr is None else from_paper(lr[0], thick_grid(reference, factor)),
        mask=from_paper(mask_array.astype(np.uint8), reference),
        scales=[float(s) for s in scales],
        reports=reports,
        levels=levels,
    )


def add_synthesize_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``mrsynth synthesize`` on an ``argparse`` sub-parsers object."""
    parser = subparsers.add_parser(
        "synthesize",
        help="synthesize a contrast (e.g. a high-resolution TSE) from input volumes with a trained model",
        description=(
            "Run MODEL on INPUT volumes and write the synthetic volume on exactly the first input's grid "
            "(and, for High-to-low models, the thick-slice sTSE_LR with --output-lr). Inputs are divided "
            "by their 99th percentile inside the body mask, as in training; the output is in units of the "
            "target contrast's 99th percentile inside the body (1.0 = that percentile). Triples are in the "
            "order superior-inferior, anterior-posterior, left-right (SI AP LR)."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="registered model name ('mrsynth models list') or checkpoint")
    parser.add_argument(
        "inputs",
        metavar="INPUT",
        nargs="+",
        help="input volumes in the order the model card lists (GE models: aOP then aIP); NIfTI, NRRD, MHA or "
        "DICOM folder, all on one grid",
    )
    parser.add_argument("--output", required=True, help="synthetic volume (e.g. sTSE_HR.nii.gz)")
    parser.add_argument("--output-lr", help="thick-slice sTSE_LR of a High-to-low model (e.g. sTSE_LR.nii.gz)")
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="fast: full-context tiles, one network pass with whole-volume context (best on CPUs); paper: "
        "Gaussian sliding windows at stride 18 18 4 as in the paper; smooth: stride 18 18 1 (slowest, fewest "
        "slice artifacts) (default: the model's registered preset, else fast)",
    )
    parser.add_argument(
        "--mode", choices=MODES, help="override the preset's mode (full-context or sliding, the paper's windows)"
    )
    parser.add_argument(
        "--stride",
        nargs=3,
        type=int,
        metavar=("SI", "AP", "LR"),
        help="sliding-window stride in voxels, order SI AP LR (implies --mode sliding; default: the preset's, "
        "else the model's); sTSE_LR is fused from the windows that start on a thick-slice boundary",
    )
    parser.add_argument(
        "--batch-size", type=int, default=4, help="sliding mode: windows per network call (default: %(default)s)"
    )
    parser.add_argument(
        "--skip-background",
        action="store_true",
        help="do not run windows or tiles that hold no voxel of the body mask (their voxels are 0)",
    )
    parser.add_argument(
        "--tile",
        nargs=3,
        type=int,
        metavar=("SI", "AP", "LR"),
        help="full-context mode: largest tile core in voxels, order SI AP LR (default: planned from --memory)",
    )
    parser.add_argument(
        "--memory",
        type=float,
        default=DEFAULT_MEMORY_GB,
        metavar="GB",
        help="full-context mode: memory one tile may use; more means fewer, larger tiles and less recomputation "
        "(default: %(default)s)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    parser.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        default="float32",
        help="run the network in bfloat16 (CPU or GPU) or float16 (GPU only) autocast: faster, less memory, "
        "outputs within about 1 %% of float32's (default: %(default)s)",
    )
    parser.add_argument(
        "--buffers-on-gpu",
        action="store_true",
        help="keep the sliding-window sums on the GPU (faster, more GPU memory); default: on the CPU",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="sliding mode: compile the network with torch.compile first (seconds, once; then faster windows: "
        "see docs/benchmarks.md); needs a C++ compiler on the CPU, runs uncompiled with a warning without one",
    )
    parser.add_argument(
        "--lr-kernels",
        choices=LR_SCHEMES,
        default="model",
        help="sliding mode: kernels that make sTSE_LR. model: the checkpoint's, on windows at LR offset 0; "
        "trained: the kernel trained with 'mrsynth train-kernel'; four: offsets 0..3 each with its trained "
        "kernel (for LR stride 1); three: without offset 3; shifted: one kernel trained at offset 1, moved "
        "to offsets 0 and 2 (default: %(default)s)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="acquisition parameter of a conditioned model, once per parameter, e.g. --param TR=2000 --param TE=80 "
        "(re-parameterisation models; 'mrsynth models info MODEL' lists each one's names, units and ranges)",
    )
    parser.add_argument("--mask", help="body mask (voxels > 0) for normalisation; default: Otsu mask of the last input")
    parser.add_argument(
        "--input-scales",
        nargs="+",
        type=float,
        metavar="SCALE",
        help="divide the inputs by these numbers instead of their own 99th percentiles, one per input (e.g. the "
        "'input scales' this command printed for a whole-head scan of the same protocol, for a scan that covers "
        "less: the percentiles move with the field of view)",
    )
    parser.add_argument(
        "--no-flip-average",
        dest="flip_average",
        action="store_false",
        help="run once, as the paper did, instead of averaging with the left-right mirrored pass (half the time)",
    )
    parser.set_defaults(func=run_synthesize)
    return parser


def default_preset(model: str) -> str:
    """The registry's preset for a registered model name; ``fast`` for checkpoint files."""
    from .models import registry

    entry = registry().get(model)
    return entry.mode if entry is not None else "fast"


def inference_options(args: argparse.Namespace) -> InferenceOptions:
    """The engine options from the preset (given, or the model's default) and the flags that override it."""
    preset = args.preset or default_preset(args.model)
    mode = args.mode or ("sliding" if args.stride is not None else None)
    if args.stride is not None and mode != "sliding":
        raise MRSynthError("--stride applies to the sliding mode only: drop --mode full-context or --stride")
    changes: dict[str, Any] = {
        "batch_size": args.batch_size,
        "tile": None if args.tile is None else tuple(args.tile),
        "memory_gb": args.memory,
        "skip_background": args.skip_background,
        "precision": args.precision,
        "buffers_on_device": args.buffers_on_gpu,
        "compile": args.compile,
    }
    if mode is not None:
        changes["mode"] = mode
        preset_mode, preset_stride = PRESETS[preset]
        changes["stride"] = tuple(args.stride) if args.stride else (preset_stride if mode == preset_mode else None)
    return InferenceOptions.preset(preset, **changes)


def _check_output(path: str) -> Path:
    if full_suffix(path).lower() not in OUTPUT_SUFFIXES:
        raise MRSynthError(f"output {path} has an unknown extension: use one of {', '.join(OUTPUT_SUFFIXES)}")
    return check_output_path(path)


def run_synthesize(args: argparse.Namespace) -> int:
    """Run ``mrsynth synthesize``: check outputs and options first, then load, read, run and write.

    Both outputs are written to temporary files and renamed only when everything succeeded, so a
    failure or cancellation leaves no output file.
    """
    from tqdm import tqdm

    from .models import load_model
    from .volume_io import read_labels, read_volume

    output = _check_output(args.output)
    output_lr = _check_output(args.output_lr) if args.output_lr else None
    if output_lr is not None and output_lr.resolve() == output.resolve():
        raise MRSynthError("--output and --output-lr are the same file: give two names")
    options = inference_options(args)
    options.checked(resolve_device(args.device))
    parameters = parse_assignments(args.param)
    model = load_model(args.model)
    if model.info.task == "super-resolution":
        raise MRSynthError(f"model {model.info.name} is a super-resolution model: use mrsynth superres with it")
    model.check_inputs(len(args.inputs))
    check_values(model.info.name, model.info.parameters, parameters)
    check_input_scales(model.info, len(args.inputs), args.input_scales)
    if options.stride is not None:
        factor = model.info.slice_factor if lr_kernel_of(model.info) is not None else None
        check_stride(options.stride, model.info.patch, factor)
    lr_kernels_for(model.info, args.lr_kernels)  # a missing trained kernel is reported before any work
    if output_lr is not None and lr_kernel_of(model.info) is None:
        raise MRSynthError(f"model {model.info.name} is not a High-to-low model and has no sTSE_LR: drop --output-lr")
    names = input_names(model.info)
    images = [read_volume(path, name) for path, name in zip(args.inputs, names, strict=True)]
    check_same_grid(dict(zip(names, images, strict=True)))  # before the progress bar opens
    mask = read_labels(args.mask, "mask") if args.mask else None

    unit = "window" if options.mode == "sliding" else "tile"
    # warnings wait until the progress bar has closed, so that each gets a line of its own
    caught: list[warnings.WarningMessage] = []
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            tqdm(desc=f"synthesizing ({options.mode})", unit=unit) as bar,
        ):
            warnings.simplefilter("always")

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            result = synthesize(
                model,
                images,
                options=options,
                device=args.device,
                mask=mask,
                flip_average=args.flip_average,
                lr_scheme=args.lr_kernels,
                progress=progress,
                parameters=parameters,
                input_scales=args.input_scales,
            )
    finally:
        for warning in caught:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    with atomic_path(output) as tmp:
        if output_lr is None:
            sitk.WriteImage(result.hr, str(tmp), useCompression=True)
        else:
            with atomic_path(output_lr) as tmp_lr:
                sitk.WriteImage(result.hr, str(tmp), useCompression=True)
                sitk.WriteImage(result.lr, str(tmp_lr), useCompression=True)
    written = [output] + ([output_lr] if output_lr is not None else [])
    for report in result.reports:
        print(report.summary())
    trained = model.info.normalisation.get("input_levels")
    levels = f"; input levels {[round(v, 3) for v in result.levels]}" + (
        f" (training {[round(v, 3) for v in trained]})" if trained else ""
    )
    print(f"wrote {', '.join(map(str, written))} ({result.intensity_unit}; input scales {result.scales}{levels})")
    return 0
