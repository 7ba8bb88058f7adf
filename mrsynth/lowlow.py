"""The Low-to-low approach (paper 000, section II.D): the GE brought down to the TSE's thick grid.

The baseline the High-to-low approach is measured against: the high-resolution GE is resampled onto
the thick-slice grid of the TSE and the network maps thick GE to thick TSE, patch for patch (56 x 56
x 8 in the paper). Two resamplings:

* ``bspline``: third-order B-spline interpolation at each thick slice's centre (1.5 high-resolution
  spacings from slice 4j, as ``grids.thick_grid`` places it), no anti-aliasing, as a registration
  toolkit would resample;
* ``weighted``: the weighted convolution of section II.E.4, the kernel [1/6, 1/3, 1/3, 1/6] centred
  on the two GE slices most similar to the thick slice (slices 4j + p - 1 .. 4j + p + 2 for the pair
  at p, p + 1), which mimics the TSE's slice profile.

The patch sampler draws thick patches with the same interface as the High-to-low one, so training
shares its loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .data import Case, sampling_mask
from .errors import MRSynthError
from .grids import thick_grid
from .highlow import SLICE_FACTOR
from .volume_io import from_paper, to_paper

RESAMPLINGS = ("bspline", "weighted")
WEIGHTED_KERNEL = (1 / 6, 1 / 3, 1 / 3, 1 / 6)
# Cubic B-spline basis at the four coefficients around a point half-way between two samples
_BSPLINE_HALF = np.array([1 / 48, 23 / 48, 23 / 48, 1 / 48])


def to_thick(hr: np.ndarray, method: str, pair_start: int = 1, factor: int = SLICE_FACTOR) -> np.ndarray:
    """Resample ``hr`` [..., LR] (LR a multiple of ``factor``) to thick slices along its last axis."""
    if method not in RESAMPLINGS:
        raise MRSynthError(f"unknown Low-to-low resampling {method!r}: use {' or '.join(RESAMPLINGS)}")
    length = hr.shape[-1]
    if length % factor:
        raise MRSynthError(f"LR length {length} is not a multiple of {factor}: pad the volume first")
    thick = length // factor
    if method == "weighted":
        first = pair_start - 1
        taps = WEIGHTED_KERNEL
    else:  # the spline's value at 4j + 1.5 from its coefficients at 4j .. 4j + 3
        hr = ndimage.spline_filter1d(hr.astype(np.float64), order=3, axis=-1, mode="mirror")
        first, taps = 0, tuple(_BSPLINE_HALF)
    out = np.zeros((*hr.shape[:-1], thick))
    for tap, weight in enumerate(taps):
        index = np.clip(np.arange(thick) * factor + first + tap, 0, length - 1)
        out += weight * hr[..., index]
    return out.astype(np.float32)


def thick_case(case: Case, method: str, pair_start: int, patch: Sequence[int]) -> Case:
    """A High-to-low training case turned into its Low-to-low form: inputs and mask on the thick grid."""
    inputs = to_thick(case.inputs, method, pair_start)
    mask = case.mask.reshape(*case.mask.shape[:2], -1, SLICE_FACTOR).any(-1)
    spacing = (case.spacing[0], case.spacing[1], case.spacing[2] * SLICE_FACTOR)
    candidates = np.flatnonzero(sampling_mask(mask, patch))
    return Case(case.name, inputs, case.target, mask, spacing, candidates)


@dataclass
class ThickPatchSampler:
    """Draws Low-to-low patches (input and target on the same thick grid), one per case in turn."""

    cases: list[Case]
    patch: tuple[int, int, int]
    rng: np.random.Generator
    next_case: int = 0

    def __post_init__(self) -> None:
        for case in self.cases:
            if any(s < p for s, p in zip(case.inputs.shape[1:], self.patch, strict=True)):
                raise MRSynthError(
                    f"case {case.name} of thick size {case.inputs.shape[1:]} is smaller than the patch {self.patch}: "
                    "use a smaller patch (the paper used 56 x 56 x 8)"
                )

    def draw(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, None]:
        """A batch of (inputs [B, C, SI, AP, T], targets [B, 1, SI, AP, T], no kernels)."""
        xs, ys = [], []
        for _ in range(batch_size):
            case = self.cases[self.next_case % len(self.cases)]
            self.next_case += 1
            centre = np.unravel_index(case.candidates[self.rng.integers(len(case.candidates))], case.mask.shape)
            starts = [
                int(np.clip(c - p // 2, 0, s - p)) for c, p, s in zip(centre, self.patch, case.mask.shape, strict=True)
            ]
            box = tuple(slice(s, s + p) for s, p in zip(starts, self.patch, strict=True))
            xs.append(case.inputs[(slice(None), *box)])
            ys.append(case.target[box])
        return np.stack(xs), np.stack(ys)[:, None], None

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "next_case": self.next_case}

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.next_case = int(state["next_case"])


def thick_images(images: Sequence[sitk.Image], method: str, pair_start: int = 1) -> list[sitk.Image]:
    """High-resolution GE images resampled onto their thick grid (``grids.thick_grid``), ready for a
    Low-to-low model; a partial last group of slices is completed by mirroring, as synthesis does."""
    result = []
    for image in images:
        array = to_paper(image)
        pad = (-array.shape[-1]) % SLICE_FACTOR
        if pad:
            array = np.pad(array, [(0, 0), (0, 0), (0, pad)], mode="reflect" if array.shape[-1] > 1 else "edge")
        result.append(from_paper(to_thick(array, method, pair_start), thick_grid(image)))
    return result
