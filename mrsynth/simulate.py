"""Physics simulation of paired training data from tissue label maps.

From a label map (the BrainWeb phantom or a SynthSeg whole-head map) this computes, following the
packaged specification ``resources/tissues_1.5T.json`` exactly: the dual-echo spoiled gradient echo
input (almost opposed / almost in phase, ``GE_aOP``, ``GE_aIP``), the T1w and T2w turbo spin-echo
targets as thick slices (``TSE_thick``, ``TSE_T2_thick``) and their noise-free high-resolution truth
(``TSE_HR``, ``TSE_T2_HR``), with head and bone masks. Signals are computed once per tissue and
spread to voxels with lookup tables, so a 256^3 map takes seconds.

Pipeline per contrast: tissue signal (complex for GE: the fat component carries its chemical-shift
phase) -> Gaussian point-spread on the high-resolution grid -> (TSE) profile-weighted thick slices
along the patient's left-right axis -> Rician noise -> magnitude.
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import __version__
from .ct import load_hu_table, simulate_ct
from .errors import MRSynthError
from .files import atomic_path
from .grids import thick_grid
from .volume_io import from_paper, paper_axes, paper_index_axis, paper_spacing, read_labels, write_volume

ATLASES = {"brainweb": "brainweb_crisp", "synthseg": "synthseg"}
GE_PROTOCOL = "gre_bonemri"
SE_OUTPUTS = {"tse_t1": "TSE", "tse_t2": "TSE_T2"}
# The contrast a model synthesizes -> the spin-echo protocol whose volumes are its target and truth.
CONTRAST_PROTOCOLS = {"TSE_T1w": "tse_t1", "TSE_T2w": "tse_t2"}
HEAD_MARGIN = 4
_SYNTHSEG_CEREBRAL_BELOW = 500
_PROFILE_SUM_TOL = 1e-3


def _resource(name: str) -> Any:
    return resources.files("mrsynth") / "resources" / name


def load_spec(path: str | Path | None = None) -> dict:
    """The simulation specification (tissues, labels, protocols); the packaged copy by default."""
    if path is None:
        return json.loads(_resource("tissues_1.5T.json").read_text(encoding="utf-8"))
    path = Path(path)
    if not path.is_file():
        raise MRSynthError(f"simulation spec {path} does not exist: check the path or leave it out")
    return json.loads(path.read_text(encoding="utf-8"))


def target_volumes(contrast: str) -> tuple[str, str]:
    """The (thick target, high-resolution truth) volume names the simulator writes for an output contrast."""
    if contrast not in CONTRAST_PROTOCOLS:
        raise MRSynthError(
            f"the simulator has no target for contrast {contrast!r}: it simulates {', '.join(CONTRAST_PROTOCOLS)}"
        )
    prefix = SE_OUTPUTS[CONTRAST_PROTOCOLS[contrast]]
    return f"{prefix}_thick", f"{prefix}_HR"


def bundled_phantom() -> sitk.Image:
    """The BrainWeb crisp phantom shipped with the package (see resources/BRAINWEB_ATTRIBUTION.md)."""
    with _resource("brainweb_phantom.npz").open("rb") as handle, np.load(handle) as data:
        image = sitk.GetImageFromArray(data["labels"])
        image.SetSpacing(tuple(float(v) for v in data["spacing"]))
        image.SetOrigin(tuple(float(v) for v in data["origin"]))
        image.SetDirection(tuple(float(v) for v in data["direction"]))
    return image


# --- tissues -------------------------------------------------------------------------------------


def tissue_names(spec: dict) -> list[str]:
    """Tissue names in spec order: the meaning of the indices ``tissue_map`` returns."""
    return list(spec["tissues"])


def _check_atlas(atlas: str) -> None:
    if atlas not in ATLASES:
        raise MRSynthError(f"unknown atlas {atlas!r}: choose one of {', '.join(ATLASES)}")


def _label_table(atlas: str, spec: dict) -> tuple[dict[int, str], int]:
    """Explicit label -> tissue pairs, and the bound below which any other nonzero label is gm."""
    _check_atlas(atlas)
    table = spec["labels"][ATLASES[atlas]]
    if atlas == "brainweb":
        return {int(label): tissue for label, tissue in table.items()}, 0
    pairs = {0: "air"}
    pairs.update({label: "csf" for label in table["csf"]})
    pairs.update({label: "wm" for label in table["wm"]})
    pairs.update({int(label): tissue for label, tissue in table["extra_cerebral"].items()})
    return pairs, _SYNTHSEG_CEREBRAL_BELOW


def tissue_map(labels: np.ndarray, atlas: str, spec: dict) -> np.ndarray:
    """Tissue index (into ``tissue_names(spec)``) of every voxel, as uint8.

    BrainWeb labels follow the spec's table; SynthSeg label 0 is air, listed csf/wm labels below
    500 as given, every other label below 500 gm, labels from 500 as listed in extra_cerebral.
    Unknown labels raise, so that a wrong atlas choice cannot pass silently.
    """
    names = tissue_names(spec)
    pairs, gm_below = _label_table(atlas, spec)
    values = np.asarray(labels)
    if not np.issubdtype(values.dtype, np.integer) and not np.array_equal(values, np.round(values)):
        raise MRSynthError("the label map has non-integer values: give a label map (segmentation), not an image")
    values = values.astype(np.int64, copy=False)  # wide enough that label + 1 cannot overflow
    top = max(max(pairs), gm_below - 1)
    lut = np.full(top + 3, -1, dtype=np.int16)  # lut[label + 1]; first and last entries catch out-of-range
    if gm_below:
        lut[2 : gm_below + 1] = names.index("gm")
    for label, tissue in pairs.items():
        lut[label + 1] = names.index(tissue)
    tissues = lut[np.clip(values, -1, top + 1) + 1]
    unknown = tissues < 0
    if unknown.any():
        bad = ", ".join(str(v) for v in np.unique(values[unknown])[:20])
        raise MRSynthError(
            f"the label map has labels that the {atlas} atlas does not define ({bad}): check --atlas or the file"
        )
    return tissues.astype(np.uint8)


# --- signal equations ----------------------------------------------------------------------------


def spin_echo_signal(pd: float, t1: float, t2: float, tr: float, te: float) -> float:
    """Spin-echo signal PD (1 - exp(-TR/T1)) exp(-TE/T2) of one component (times in ms)."""
    return pd * (1.0 - np.exp(-tr / t1)) * np.exp(-te / t2)


def spoiled_ge_signal(pd: float, t1: float, t2star: float, tr: float, te: float, flip_deg: float) -> float:
    """Spoiled gradient-echo signal PD sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE/T2*), E1 = exp(-TR/T1)."""
    alpha = np.deg2rad(flip_deg)
    e1 = np.exp(-tr / t1)
    return pd * np.sin(alpha) * (1.0 - e1) / (1.0 - np.cos(alpha) * e1) * np.exp(-te / t2star)


def fat_phase(te_ms: float, spec: dict) -> complex:
    """The fat component's chemical-shift phase factor exp(i 2 pi df TE), df = shift_ppm * Larmor (Hz)."""
    df_hz = spec["fat_shift_ppm"] * spec["larmor_MHz"]
    return complex(np.exp(2j * np.pi * df_hz * te_ms * 1e-3))


def _tissue_se(tissue: dict, fat: dict, protocol: dict) -> float:
    ff = tissue["fat_fraction"]
    tr, te = protocol["TR"], protocol["TE"]
    water = spin_echo_signal(tissue["PD"], tissue["T1"], tissue["T2"], tr, te)
    return (1.0 - ff) * water + ff * spin_echo_signal(tissue["PD"], fat["T1"], fat["T2"], tr, te)


def _tissue_ge(tissue: dict, fat: dict, protocol: dict, te: float, spec: dict) -> complex:
    ff, tr, flip = tissue["fat_fraction"], protocol["TR"], protocol["flip_deg"]
    water = spoiled_ge_signal(tissue["PD"], tissue["T1"], tissue["T2star"], tr, te, flip)
    fat_signal = spoiled_ge_signal(tissue["PD"], fat["T1"], fat["T2star"], tr, te, flip)
    return (1.0 - ff) * water + ff * fat_signal * fat_phase(te, spec)


def tissue_signals(spec: dict) -> dict[str, np.ndarray]:
    """Noise-free signal of every tissue (spec order) per output: complex for GE echoes, real for TSE."""
    tissues, fat = spec["tissues"].values(), spec["fat_component"]
    ge = spec["protocols"][GE_PROTOCOL]
    signals = {
        f"GE_{echo}": np.array([_tissue_ge(t, fat, ge, te, spec) for t in tissues], dtype=np.complex128)
        for echo, te in zip(ge["echo_names"], ge["TE"], strict=True)
    }
    for protocol, name in SE_OUTPUTS.items():
        signals[name] = np.array([_tissue_se(t, fat, spec["protocols"][protocol]) for t in tissues])
    return signals


# --- thick slices --------------------------------------------------------------------------------


def check_profile(profile: Sequence[float], factor: int) -> np.ndarray:
    """The slice profile as float64 summing to 1 (renormalised if off by rounding, up to 1e-3).

    It must have ``factor`` non-negative entries.
    """
    weights = np.asarray(profile, dtype=np.float64)
    if weights.shape != (factor,):
        raise MRSynthError(f"slice profile has {weights.size} entries for a slice factor of {factor}: give {factor}")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or abs(weights.sum() - 1.0) > _PROFILE_SUM_TOL:
        raise MRSynthError(
            f"slice profile {weights.tolist()} sums to {weights.sum():g}: give non-negative weights that sum to 1"
        )
    return weights if abs(weights.sum() - 1.0) < 1e-9 else weights / weights.sum()


def _slice_settings(spec: dict, factor: int | None, profile: Sequence[float] | None) -> tuple[int, np.ndarray]:
    """Factor and profile from the options, else from the TSE protocols (a new factor alone gets a boxcar)."""
    protocols = [spec["protocols"][name] for name in SE_OUTPUTS]
    if any(p["slice_factor"] != protocols[0]["slice_factor"] for p in protocols):
        raise MRSynthError("the spec's TSE protocols have different slice factors: give one with slice_factor")
    if factor is not None and factor < 1:
        raise MRSynthError(f"slice factor {factor} is not a positive integer: give 1 or more")
    if profile is not None:
        factor = len(profile) if factor is None else factor
    elif factor is None or factor == protocols[0]["slice_factor"]:
        factor, profile = protocols[0]["slice_factor"], protocols[0]["slice_profile"]
    else:
        profile = [1.0 / factor] * factor
    return int(factor), check_profile(profile, int(factor))


def thick_slices(array: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Paper-order volume -> thick slices: slice j = sum_k profile[k] * slice (factor j + k) along LR."""
    factor = len(profile)
    si, ap, lr = array.shape
    blocks = np.ascontiguousarray(array).reshape(si, ap, lr // factor, factor)
    return np.tensordot(blocks, profile.astype(np.float32), axes=([3], [0])).astype(np.float32)


# --- cropping ------------------------------------------------------------------------------------


def _extract(image: sitk.Image, box: Sequence[tuple[int, int]]) -> sitk.Image:
    """The sub-image over index ranges [lo, hi) per index axis, with its origin moved accordingly."""
    return image[tuple(slice(lo, hi) for lo, hi in box)]


def _crop_to_head(image: sitk.Image, factor: int) -> tuple[sitk.Image, list[tuple[int, int]]]:
    """Crop to the nonzero labels' bounding box plus a margin, LR length rounded up to the factor."""
    head = sitk.GetArrayViewFromImage(image) != 0
    lr_axis = paper_index_axis(image, 2)
    box = []
    for axis, size in enumerate(image.GetSize()):
        occupied = np.flatnonzero(head.any(axis=tuple(a for a in range(3) if a != 2 - axis)))
        lo, hi = max(int(occupied[0]) - HEAD_MARGIN, 0), min(int(occupied[-1]) + 1 + HEAD_MARGIN, size)
        if axis == lr_axis:
            length = min(-(-(hi - lo) // factor) * factor, size)
            hi = min(lo + length, size)
            lo = hi - length
        box.append((lo, hi))
    return _extract(image, box), box


def _crop_lr_to_factor(image: sitk.Image, factor: int) -> tuple[sitk.Image, int]:
    """Drop the last LR slices that do not fill a thick slice, and say so."""
    axis = paper_index_axis(image, 2)
    size = image.GetSize()[axis]
    if size < factor:
        raise MRSynthError(f"the label map has {size} slices along left-right, fewer than the slice factor {factor}")
    cropped = size % factor
    if cropped:
        warnings.warn(
            f"the left-right length {size} is not a multiple of the slice factor {factor}: "
            f"the last {cropped} high-resolution slice(s) were cropped from all outputs",
            stacklevel=3,
        )
        box = [(0, n) for n in image.GetSize()]
        box[axis] = (0, size - cropped)
        image = _extract(image, box)
    return image, cropped


# --- simulation ----------------------------------------------------------------------------------


def _blur(array: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(array, sigma, output=np.float32) if sigma > 0 else array


def _noise_sigma(magnitude: np.ndarray, head: np.ndarray, snr: float) -> float:
    """Rician noise sigma: 99th percentile of the noise-free magnitude in the head over the SNR."""
    return 0.0 if math.isinf(snr) else float(np.percentile(magnitude[head], 99)) / snr


def _rician(real: np.ndarray, imag: np.ndarray | None, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the complex signal plus complex Gaussian noise of standard deviation sigma."""
    noisy_real = real + sigma * rng.standard_normal(real.shape, dtype=np.float32)
    noisy_imag = sigma * rng.standard_normal(real.shape, dtype=np.float32)
    if imag is not None:
        noisy_imag += imag
    return np.hypot(noisy_real, noisy_imag).astype(np.float32)


def _protocol_snr(spec: dict, protocol: str, snr: float | None) -> float:
    value = spec["protocols"][protocol]["snr"] if snr is None else float(snr)
    if not value > 0:
        raise MRSynthError(f"SNR {value} is not positive: give a positive SNR, or inf for no noise")
    return float(value)


def _load_labels(labels: sitk.Image | str | Path) -> tuple[sitk.Image, str | None]:
    if isinstance(labels, sitk.Image):
        return labels, None
    return read_labels(labels), str(Path(labels).resolve())


def _prepare_out_dir(out_dir: str | Path) -> Path:
    """Create the output folder (not its parents), failing before any work."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise MRSynthError(f"output folder {out_dir} is a file: give a folder")
    if not out_dir.parent.is_dir():
        raise MRSynthError(f"the parent folder of {out_dir} does not exist: create it first or choose another")
    out_dir.mkdir(exist_ok=True)
    return out_dir


def simulate(
    labels: sitk.Image | str | Path,
    atlas: str,
    out_dir: str | Path | None = None,
    *,
    seed: int = 0,
    snr: float | None = None,
    slice_factor: int | None = None,
    slice_profile: Sequence[float] | None = None,
    crop_to_head: bool = False,
    spec: dict | None = None,
    ct: bool = False,
    dess: bool = False,
) -> dict[str, sitk.Image]:
    """Simulate GE inputs, thick-slice TSE targets and their high-resolution truth from a label map.

    ``snr`` overrides every protocol's SNR (``math.inf``: no noise); ``slice_factor`` and
    ``slice_profile`` override the TSE protocols' (a new factor alone gets a uniform profile).
    ``TSE_HR`` / ``TSE_T2_HR`` are the noise-free spin-echo magnitude on the high-resolution grid
    after the same point-spread as the acquired images but with no slice integration: the truth a
    super-resolving synthesis should reach, blurred only as much as the in-plane resolution is.
    GE noise is added per echo on the high-resolution grid; TSE noise on the thick grid, its sigma
    from the noise-free thick image inside the thick head mask (slabs holding any head voxel).
    With ``ct`` a ``CT`` in Hounsfield units (``ct.simulate_ct``, its own random stream, so the MR
    outputs are the same with or without it) is added on the high-resolution grid. With ``dess``
    the noise-free dual-echo steady-state echoes ``DESS_S1``, ``DESS_S2`` and the true T1 map
    ``DESS_T1`` (ms, for T2 estimation; ``dess.dess_maps``) are added on the high-resolution grid.
    Outputs are float32 images and uint8 masks; with ``out_dir`` they are written there as
    ``<NAME>.nii.gz`` with ``simulation.json`` recording every parameter used.
    """
    spec = load_spec() if spec is None else spec
    factor, profile = _slice_settings(spec, slice_factor, slice_profile)
    snrs = {name: _protocol_snr(spec, name, snr) for name in (GE_PROTOCOL, *SE_OUTPUTS)}
    _check_atlas(atlas)
    folder = _prepare_out_dir(out_dir) if out_dir is not None else None
    image, source = _load_labels(labels)
    if not np.any(sitk.GetArrayViewFromImage(image)):
        raise MRSynthError("the label map is all background (label 0): check that the right file was given")
    head_box = None
    if crop_to_head:
        image, head_box = _crop_to_head(image, factor)
    image, cropped = _crop_lr_to_factor(image, factor)

    labels_paper = np.transpose(sitk.GetArrayViewFromImage(image), paper_axes(image))
    head = ndimage.binary_fill_holes(labels_paper != 0)
    tissues = tissue_map(labels_paper, atlas, spec)
    rng = np.random.default_rng(seed)
    outputs, sigmas = _simulate_arrays(tissues, head, spec, profile, snrs, rng)
    if ct:
        ct_rng = np.random.default_rng([seed, 4])  # apart from the MR stream, which stays as it was
        outputs["CT"] = simulate_ct(tissues, tissue_names(spec), paper_spacing(image), ct_rng)
    if dess:
        from .dess import dess_maps  # imported here: dess builds on this module's tissue maps

        outputs.update({f"DESS_{name}": array for name, array in dess_maps(tissues, spec).items()})
    thick = thick_grid(image, factor)
    images = {name: from_paper(array, thick if name.endswith("_thick") else image) for name, array in outputs.items()}
    if folder is not None:
        params = {
            "mrsynth_version": __version__,
            "source": source,
            "atlas": atlas,
            "seed": seed,
            "snr": snrs,
            "slice_factor": factor,
            "slice_profile": profile.tolist(),
            "psf_sigma_voxels": spec["acquisition"]["psf_sigma_voxels"],
            "cropped_lr_slices": cropped,
            "crop_to_head_index_box": head_box,
            "noise_sigma": sigmas,
            "outputs": sorted(images),
            "spec": spec,
            "ct_hu": load_hu_table() if ct else None,
        }
        _write(images, params, folder)
    return images


def _simulate_arrays(
    tissues: np.ndarray,
    head: np.ndarray,
    spec: dict,
    profile: np.ndarray,
    snrs: dict[str, float],
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """All outputs as paper-order arrays, and the noise sigma used for each noisy one.

    ``head`` (filled nonzero labels) is kept apart from the tissues because SynthSeg's sinus air
    (label 502) is air tissue inside the head.
    """
    signals = tissue_signals(spec)
    psf = spec["acquisition"]["psf_sigma_voxels"]
    outputs: dict[str, np.ndarray] = {}
    sigmas: dict[str, float] = {}
    for name, values in signals.items():
        if name.startswith("GE_"):
            real = _blur(values.real.astype(np.float32)[tissues], psf)
            imag = _blur(values.imag.astype(np.float32)[tissues], psf)
            sigmas[name] = _noise_sigma(np.hypot(real, imag), head, snrs[GE_PROTOCOL])
            outputs[name] = _rician(real, imag, sigmas[name], rng)
    thick_head = thick_slices(head.astype(np.float32), profile) > 0
    for protocol, name in SE_OUTPUTS.items():
        truth = _blur(signals[name].astype(np.float32)[tissues], psf)
        noise_free = thick_slices(truth, profile)
        sigmas[f"{name}_thick"] = _noise_sigma(noise_free, thick_head, snrs[protocol])
        outputs[f"{name}_thick"] = _rician(noise_free, None, sigmas[f"{name}_thick"], rng)
        outputs[f"{name}_HR"] = truth
    outputs["head_mask"] = head.astype(np.uint8)
    bone = [tissue_names(spec).index(t) for t in spec["bone_tissues"]]
    outputs["bone_mask"] = np.isin(tissues, bone).astype(np.uint8)
    return outputs, sigmas


def _write(images: dict[str, sitk.Image], params: dict, folder: Path) -> None:
    for name, image in images.items():
        write_volume(image, folder / f"{name}.nii.gz")
    with atomic_path(folder / "simulation.json") as tmp:
        tmp.write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")


# --- command line --------------------------------------------------------------------------------


def add_simulate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``mrsynth simulate`` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "simulate",
        help="simulate paired GE inputs and TSE targets from a tissue label map",
        description=(
            "Simulate, from a BrainWeb or SynthSeg label map and the 1.5 T tissue/protocol spec, "
            "the dual-echo GE input (GE_aOP, GE_aIP), thick-slice T1w and T2w TSE targets "
            "(TSE_thick, TSE_T2_thick), their noise-free high-resolution truth (TSE_HR, TSE_T2_HR), "
            "head_mask and bone_mask, with simulation.json recording every parameter."
        ),
    )
    parser.add_argument("labels", metavar="LABELS", help="label map file (NIfTI, NRRD, MHA ...)")
    parser.add_argument("--atlas", required=True, choices=sorted(ATLASES), help="which label convention LABELS uses")
    parser.add_argument("--out-dir", required=True, help="output folder (created if missing; its parent must exist)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed, for reproducible outputs (default 0)")
    parser.add_argument("--snr", type=float, help="SNR for every contrast (default: the spec's; 'inf' for no noise)")
    parser.add_argument(
        "--slice-factor",
        type=int,
        help="high-resolution slices per thick TSE slice along left-right (default 4)",
    )
    parser.add_argument(
        "--slice-profile",
        type=float,
        nargs="+",
        metavar="W",
        help="weights of the slices in a thick slice, summing to 1 (default: the spec's 1/6 1/3 1/3 1/6; "
        "a new --slice-factor alone gets equal weights)",
    )
    parser.add_argument(
        "--crop-to-head",
        action="store_true",
        help=f"crop all outputs to the head's bounding box plus {HEAD_MARGIN} voxels (saves memory)",
    )
    parser.add_argument(
        "--ct",
        action="store_true",
        help="also write CT.nii.gz, a CT in Hounsfield units of the same anatomy (resources/ct_hu.json)",
    )
    parser.add_argument(
        "--dess",
        action="store_true",
        help="also write DESS_S1, DESS_S2 (noise-free dual-echo steady-state echoes) and DESS_T1 (true T1, ms)",
    )
    parser.set_defaults(func=run_simulate)
    return parser


def run_simulate(args: argparse.Namespace) -> int:
    """Run ``mrsynth simulate`` and list what it wrote."""
    images = simulate(
        args.labels,
        args.atlas,
        args.out_dir,
        seed=args.seed,
        snr=args.snr,
        slice_factor=args.slice_factor,
        slice_profile=args.slice_profile,
        crop_to_head=args.crop_to_head,
        ct=args.ct,
        dess=args.dess,
    )
    out_dir = Path(args.out_dir)
    for name, image in images.items():
        print(f"wrote {out_dir / f'{name}.nii.gz'} (size {image.GetSize()}, spacing {image.GetSpacing()})")
    print(f"wrote {out_dir / 'simulation.json'}")
    return 0
