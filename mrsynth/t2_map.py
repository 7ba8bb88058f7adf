"""``mrsynth t2-map``: a quantitative T2 map (ms) from the two echoes of a DESS scan.

Why a command of its own: the super-resolved DESS echoes (``mrsynth superres superres-x4-dess-sim``)
keep the input's units so that their ratio carries T2 (paper 003, section 3.2), and a user wants the
map, not the ratio. The estimator is ``dess.estimate_t2`` (the analytic method of Sveinsson et al.
2017), which needs the sequence's TR, TE and flip angle and a T1: one assumed value, or a T1 map on
the echoes' grid. The T1 matters at DESS settings (at TR 23 ms and 20 degrees, T1 833 ms against
2569 ms moves the ratio's T1 factor by about a quarter), so nothing is assumed by default.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .dess import T2_RANGE, estimate_t2
from .errors import MRSynthError
from .volume_io import check_same_grid


@dataclass(frozen=True)
class DessProtocol:
    """The DESS sequence settings the estimator needs (ms, ms, degrees)."""

    tr: float
    te: float
    flip_deg: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.tr) and np.isfinite(self.te) and 0 < self.te < self.tr):
            raise MRSynthError(f"TR {self.tr} ms and TE {self.te} ms: need 0 < TE < TR (both in ms)")
        if not 0 < self.flip_deg < 180:
            raise MRSynthError(f"flip angle {self.flip_deg} degrees: give one between 0 and 180")

    def as_dict(self) -> dict[str, float]:
        return {"TR": float(self.tr), "TE": float(self.te), "flip_deg": float(self.flip_deg)}


@dataclass(frozen=True)
class T2Map:
    """The T2 map (ms, 0 where no T2 was found) and how many voxels got one."""

    image: sitk.Image
    valid: int
    considered: int

    def summary(self) -> str:
        values = sitk.GetArrayViewFromImage(self.image)
        found = values[values > 0]
        median = f", median {np.median(found):.1f} ms" if found.size else ""
        return f"T2 found in {self.valid} of {self.considered} voxels{median}"


def t2_map(
    s1: sitk.Image,
    s2: sitk.Image,
    protocol: DessProtocol,
    t1: float | sitk.Image,
    mask: sitk.Image | None = None,
) -> T2Map:
    """T2 (ms) per voxel from the DESS echoes S1 (FID-like) and S2 (echo-like), on their grid.

    ``t1`` is one assumed T1 (ms) or a T1 map (ms) on the echoes' grid. Voxels outside ``mask``, and
    those whose echo ratio gives no T2 in ``dess.T2_RANGE`` (air, noise, S2 above what any T2 allows),
    are 0 in the map: a NaN would break most viewers and statistics. No T2 anywhere is an error (the
    echoes swapped, or wrong settings), not an empty map.
    """
    images = {"S1": s1, "S2": s2} | ({"T1 map": t1} if isinstance(t1, sitk.Image) else {})
    images |= {"mask": mask} if mask is not None else {}
    check_same_grid(images)
    if isinstance(t1, sitk.Image):
        t1_values = sitk.GetArrayFromImage(t1).astype(np.float64)
        if not np.all(np.isfinite(t1_values)) or (t1_values <= 0).any():
            raise MRSynthError("the T1 map has zero, negative or non-finite values: give T1 in ms, > 0 everywhere")
    else:
        if not (np.isfinite(t1) and t1 > 0):
            raise MRSynthError(f"T1 {t1} ms: give the assumed T1 in ms, > 0")
        t1_values = float(t1)
    inside = np.ones(s1.GetSize()[::-1], bool) if mask is None else sitk.GetArrayViewFromImage(mask) > 0
    if not inside.any():
        raise MRSynthError("the mask is empty: give a mask of the tissue to map, or none")
    t2 = estimate_t2(sitk.GetArrayFromImage(s1), sitk.GetArrayFromImage(s2), t1_values, protocol.as_dict())
    found = np.isfinite(t2) & inside
    if not found.any():
        raise MRSynthError(
            "no voxel gives a T2: check that S1 is the first (FID-like, brighter) echo and S2 the second, and the "
            "TR, TE, flip angle and T1"
        )
    out = sitk.GetImageFromArray(np.where(found, t2, 0.0).astype(np.float32))
    out.CopyInformation(s1)
    return T2Map(out, int(found.sum()), int(inside.sum()))


def add_t2_map_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "t2-map",
        help="T2 map (ms) from the two echoes of a DESS scan (e.g. super-resolved by mrsynth superres)",
        description="T2 (ms) from the echo ratio of a dual-echo steady-state scan (Sveinsson et al. 2017). S1 is the "
        "FID-like echo, S2 the echo-like one, on one grid and in the same units (mrsynth superres keeps the "
        f"input's units). Voxels without a T2 in {T2_RANGE[0]:g}-{T2_RANGE[1]:g} ms, or outside --mask, are 0.",
    )
    parser.add_argument("s1", help="the first (FID-like, brighter) echo")
    parser.add_argument("s2", help="the second (echo-like) echo")
    parser.add_argument("--output", required=True, help="the T2 map to write (.nii.gz, .nrrd, .mha, ...)")
    parser.add_argument("--tr", type=float, required=True, help="repetition time (ms)")
    parser.add_argument("--te", type=float, required=True, help="echo time of S1 (ms)")
    parser.add_argument("--flip", type=float, required=True, help="flip angle (degrees)")
    t1 = parser.add_mutually_exclusive_group(required=True)
    t1.add_argument("--t1", type=float, help="one assumed T1 (ms) for every voxel")
    t1.add_argument("--t1-map", help="a T1 map (ms) on the echoes' grid")
    parser.add_argument("--mask", help="map only inside this mask (same grid)")
    parser.set_defaults(func=run_t2_map)
    return parser


def run_t2_map(args: argparse.Namespace) -> int:
    from .synthesis import _check_output
    from .volume_io import read_labels, read_volume, write_volume

    output = _check_output(args.output)
    protocol = DessProtocol(args.tr, args.te, args.flip)
    s1, s2 = read_volume(args.s1, "S1"), read_volume(args.s2, "S2")
    t1 = read_volume(args.t1_map, "T1 map", check=False) if args.t1_map else args.t1
    mask = read_labels(args.mask, "mask") if args.mask else None
    result = t2_map(s1, s2, protocol, t1, mask)
    write_volume(result.image, output)
    print(f"{result.summary()}; wrote {output}")
    return 0
