"""The thick-slice forward model of super-resolution (paper 003, section 3.2) and its inverse grids.

Thick slices are made from thin ones as the paper did: an anti-aliasing low-pass FIR filter along
the slice axis, then keeping every ``factor``-th sample. The paper used a 48th-order filter; ours
is a Hamming-windowed sinc (``scipy.signal.firwin``) of order 48 (49 taps) for odd factors and
order 47 (48 taps) for even ones, cut off at the thick grid's Nyquist frequency (``1 / factor`` of
the thin grid's) with unit gain at DC. The parity rule puts each thick slice's centre where
``grids.thick_grid`` puts it, ``(factor - 1) / 2 + factor * j`` thin slices from the first, so
simulated and real thick volumes share one geometry. Its response (``frequency_response``) is
flat to 1 % up to half the cut-off and below -40 dB from 1.5 times the cut-off, for factors 2-4.

The network's input is the thick volume interpolated back onto the thin grid by cubic B-spline
along the slice axis (``to_thin``); ``sr_baselines`` holds the other interpolations.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import SimpleITK as sitk
from scipy import ndimage, signal

from .errors import MRSynthError
from .grids import thick_grid
from .volume_io import from_paper, paper_index_axis, paper_spacing

FILTER_ORDER = 48
FACTORS = (2, 3, 4)
AXIS_NAMES = ("SI", "AP", "LR")
NETWORK_SLICE_AXIS = 0  # super-resolution networks see the slice axis as their first spatial axis


def check_factor(factor: int) -> int:
    if int(factor) != factor or factor < 2:
        raise MRSynthError(f"slice factor {factor} is not an integer of 2 or more: use 2, 3 or 4")
    return int(factor)


def antialias_filter(factor: int) -> np.ndarray:
    """The FIR low-pass taps for a slice factor (see the module docstring for the design)."""
    factor = check_factor(factor)
    taps = FILTER_ORDER + 1 if factor % 2 else FILTER_ORDER
    return signal.firwin(taps, 1.0 / factor, window="hamming").astype(np.float64)


def frequency_response(factor: int, points: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(frequency in units of the thin grid's Nyquist frequency, gain) of the anti-aliasing filter."""
    w, h = signal.freqz(antialias_filter(factor), worN=points)
    return w / np.pi, np.abs(h)


def thick_count(thin: int, factor: int) -> int:
    """Thick slices covering ``thin`` thin ones (a last partial group still gets one, as in thick_grid)."""
    return -(-thin // factor)


def make_thick(array: np.ndarray, axis: int, factor: int) -> np.ndarray:
    """Thin volume -> thick slices along ``axis``: anti-aliasing filter, then one sample per ``factor``.

    Thick slice j is the filter centred on thin position ``factor * j + (factor - 1) / 2``; the
    volume is mirrored at its ends so the filter sees no artificial edge.
    """
    factor = check_factor(factor)
    taps = antialias_filter(factor)
    x = np.moveaxis(np.asarray(array, dtype=np.float32), axis, 0)
    n = x.shape[0]
    if n < 2:
        raise MRSynthError(f"the volume has {n} slice along the slice axis: thick slices need 2 or more")
    count = thick_count(n, factor)
    half = (len(taps) - 1) / 2
    pad = len(taps) + factor
    padded = np.pad(x, [(pad, pad)] + [(0, 0)] * (x.ndim - 1), mode="reflect")
    first = pad + (factor - 1) / 2 - half  # an integer by the parity rule
    out = np.zeros((count, *x.shape[1:]), dtype=np.float64)
    for k, tap in enumerate(taps):
        start = int(round(first)) + k
        out += tap * padded[start : start + factor * count : factor]
    return np.moveaxis(out.astype(np.float32), 0, axis)


def thin_positions(thin: int, factor: int) -> np.ndarray:
    """Where each thin slice lies in thick-slice index units (thick slice j is centred at j)."""
    return (np.arange(thin) - (factor - 1) / 2) / factor


@lru_cache(maxsize=32)
def cubic_matrix(thick: int, thin: int, factor: int) -> np.ndarray:
    """The [thin, thick] matrix of cubic B-spline interpolation (scipy.ndimage; ends held constant)."""
    positions = thin_positions(thin, factor)[None]
    columns = []
    for k in range(thick):
        unit = np.zeros(thick)
        unit[k] = 1.0
        columns.append(ndimage.map_coordinates(unit, positions, order=3, mode="nearest"))
    return np.stack(columns, axis=1)


def apply_along(matrix: np.ndarray, array: np.ndarray, axis: int) -> np.ndarray:
    """Apply a [new, old] matrix along one axis of a volume."""
    out = np.tensordot(matrix.astype(np.float32), np.moveaxis(np.asarray(array, dtype=np.float32), axis, 0), axes=1)
    return np.moveaxis(out, 0, axis)


def to_thin(thick: np.ndarray, axis: int, factor: int, thin: int | None = None) -> np.ndarray:
    """Thick slices back onto the thin grid by cubic B-spline interpolation (the network's input)."""
    factor = check_factor(factor)
    count = thick.shape[axis]
    thin = count * factor if thin is None else thin
    return apply_along(cubic_matrix(count, thin, factor), thick, axis)


def back_project(thin: np.ndarray, thick: np.ndarray, axis: int, factor: int, iterations: int = 1) -> np.ndarray:
    """Make a thin volume consistent with its thick slices: ``thin += to_thin(thick - make_thick(thin))``, repeated.

    Iterative back-projection (Irani and Peleg 1991), with this module's forward model and its cubic
    B-spline inverse. A network's output may drift slowly (a bias over a large flat region, a ratio
    error between echoes) where the thick slices already pin the answer down; whatever the forward
    model can see of that drift is taken out, while the detail it cannot see (above the thick grid's
    Nyquist frequency), which is what the network adds, stays. Each pass shrinks the remaining
    inconsistency by ``I - make_thick o to_thin``, whose gain is 0 at DC and below 1 up to the thick
    Nyquist frequency. It assumes the thick slices were made by ``make_thick``: true for simulated
    ones, an approximation for acquired ones, whose slice profile differs. No library offers this
    forward model, hence our own.
    """
    if iterations < 0:
        raise MRSynthError(f"back-projection iterations {iterations} is negative: give 0 (none) or more")
    factor = check_factor(factor)
    out = np.asarray(thin, dtype=np.float32)
    thick = np.asarray(thick, dtype=np.float32)
    n = out.shape[axis]
    if thick_count(n, factor) != thick.shape[axis]:
        raise MRSynthError(
            f"{n} thin slices do not come from {thick.shape[axis]} thick ones at x{factor}: give the thin volume "
            "on the thick volume's thin grid"
        )
    for _ in range(iterations):
        out = out + to_thin(thick - make_thick(out, axis, factor), axis, factor, n)
    return out


def slice_axis_of(image: sitk.Image, ratio: float = 1.5) -> int:
    """The paper axis (0 SI, 1 AP, 2 LR) of a thick-slice volume: the one whose spacing is largest."""
    spacing = np.array(paper_spacing(image))
    order = np.argsort(spacing)
    if spacing[order[2]] < ratio * spacing[order[1]]:
        raise MRSynthError(
            f"the voxel size {tuple(round(float(s), 2) for s in spacing)} mm (SI AP LR) has no thick axis: "
            "give the slice axis (--slice-axis SI|AP|LR)"
        )
    return int(order[2])


def thin_grid(thick: sitk.Image, factor: int, paper_axis: int) -> sitk.Image:
    """The thin grid a thick image's slices were made from: the inverse of ``grids.thick_grid``."""
    factor = check_factor(factor)
    axis = paper_index_axis(thick, paper_axis)
    size = list(thick.GetSize())
    size[axis] *= factor
    spacing = list(thick.GetSpacing())
    spacing[axis] /= factor
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing(spacing)
    grid.SetDirection(thick.GetDirection())
    grid.SetOrigin(thick.GetOrigin())
    index = [0.0, 0.0, 0.0]
    index[axis] = -(factor - 1) / 2
    grid.SetOrigin(grid.TransformContinuousIndexToPhysicalPoint(index))
    return grid


def thick_image(array: np.ndarray, reference: sitk.Image, factor: int, paper_axis: int) -> sitk.Image:
    """A paper-order thick array on the thick grid of ``reference`` (for writing simulated inputs)."""
    return from_paper(array, thick_grid(reference, factor, paper_axis))


def parse_axis(name: str | int) -> int:
    """``SI``/``AP``/``LR`` (or 0/1/2) -> paper axis index."""
    text = str(name).upper()
    if text in AXIS_NAMES:
        return AXIS_NAMES.index(text)
    if text in ("0", "1", "2"):
        return int(text)
    raise MRSynthError(f"unknown slice axis {name!r}: use SI, AP or LR")
