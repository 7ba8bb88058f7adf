"""Training cases and the High-to-low patch sampler (paper 000, sections II.B and II.E).

A case is a folder with the inputs on the high-resolution grid (e.g. ``GE_aOP.nii.gz``,
``GE_aIP.nii.gz``), the thick-slice target (``TSE_thick.nii.gz``) on the grid that ``grids.thick_grid``
derives from it, and a body mask (``head_mask.nii.gz``). ``mrsynth simulate`` and ``mrsynth prepare``
write such folders; input voxels that registration pushed outside the field of view are marked
``masks.OUTSIDE`` (-1) by ``prepare``: they are set to 0 and never sampled as patch centres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MRSynthError
from .grids import thick_grid
from .highlow import KERNEL_SCHEMES, SLICE_FACTOR, aligned_window, offset_kernel_combinations
from .masks import OUTSIDE, normalise_p99, sampling_mask
from .volume_io import check_same_grid, paper_spacing, read_volume, same_grid, to_paper


def find_volume(folder: Path, name: str) -> Path:
    """The file for a volume name in a case folder, whatever its extension."""
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if (folder / f"{name}{suffix}").is_file():
            return folder / f"{name}{suffix}"
    raise MRSynthError(f"case {folder} has no volume named {name} (.nii.gz, .nrrd, .mha): check the data config")


@dataclass
class Case:
    """One training subject, normalised, in paper order (SI, AP, LR)."""

    name: str
    inputs: np.ndarray  # [C, SI, AP, LR] high resolution
    target: np.ndarray  # [SI, AP, LR / 4] thick slices
    mask: np.ndarray  # [SI, AP, LR] body mask
    spacing: tuple[float, float, float]
    candidates: np.ndarray  # flat indices of the sampling mask

    @classmethod
    def load(cls, folder: str | Path, inputs: Sequence[str], target: str, mask: str, patch: Sequence[int]) -> Case:
        folder = Path(folder)
        images = {name: read_volume(find_volume(folder, name), f"{folder.name}/{name}") for name in inputs}
        check_same_grid(images)
        reference = images[inputs[0]]
        target_image = read_volume(find_volume(folder, target), f"{folder.name}/{target}")
        if not same_grid(target_image, thick_grid(reference, SLICE_FACTOR)):
            raise MRSynthError(
                f"case {folder}: {target} is not on the thick grid of {inputs[0]} (LR spacing x{SLICE_FACTOR}, "
                "slice j centred 1.5 high-resolution spacings from slice 4j): resample the inputs onto the "
                "intermediate grid of the target first"
            )
        mask_array = to_paper(read_volume(find_volume(folder, mask), f"{folder.name}/{mask}", check=False)) > 0
        if not mask_array.any():
            raise MRSynthError(f"case {folder}: {mask} is empty: give a body mask")
        raw = [to_paper(images[n]) for n in inputs]
        outside = np.any([array == OUTSIDE for array in raw], axis=0)
        raw = [np.where(outside, 0, array) for array in raw]
        arrays = np.stack([normalise_p99(array, mask_array & ~outside)[0] for array in raw])
        thick_mask = mask_array.reshape(*mask_array.shape[:2], -1, SLICE_FACTOR).any(-1)
        target_array = normalise_p99(to_paper(target_image), thick_mask)[0]
        return cls(
            name=folder.name,
            inputs=arrays.astype(np.float32),
            target=target_array.astype(np.float32),
            mask=mask_array,
            spacing=paper_spacing(reference),
            candidates=np.flatnonzero(sampling_mask(mask_array, patch) & ~outside),
        )


class RandomSampler:
    """A sampler whose only state is its random generator ``rng``; a resumed run restores it, so
    the data go on where the interrupted run stopped instead of repeating its first batches."""

    rng: np.random.Generator

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


@dataclass
class PatchSampler:
    """Draws High-to-low training patches: one per case in turn, each at a random offset with its kernel.

    ``kernel_scheme`` "fig3" draws the paper's Fig. 3 (offset, kernel) combinations; "aligned" starts
    the patch at any slice and reduces it with the average kernel on the image's thick slices
    (``highlow.aligned_window``), one thick slice fewer per patch.
    """

    cases: list[Case]
    patch: tuple[int, int, int]
    pair_start: int
    rng: np.random.Generator
    random_offsets: bool = True
    fixed_offset: int = 0  # the LR offset of every patch when random_offsets is off (kernel training)
    kernel_scheme: str = "fig3"
    next_case: int = 0

    def __post_init__(self) -> None:
        if self.kernel_scheme not in KERNEL_SCHEMES:
            raise MRSynthError(f"kernel_scheme must be {' or '.join(KERNEL_SCHEMES)}, not {self.kernel_scheme!r}")
        if self.patch[2] % SLICE_FACTOR:
            raise MRSynthError(f"the LR patch size {self.patch[2]} must be a multiple of {SLICE_FACTOR}")
        for case in self.cases:
            if any(s < p + SLICE_FACTOR for s, p in zip(case.inputs.shape[1:], self.patch)):
                raise MRSynthError(
                    f"case {case.name} of size {case.inputs.shape[1:]} is smaller than the patch {self.patch} "
                    f"plus {SLICE_FACTOR} voxels: use a smaller patch"
                )
        self.combos = offset_kernel_combinations(self.pair_start)

    def draw(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A batch of (inputs [B, C, SI, AP, LR], targets [B, 1, SI, AP, LR/4], kernels [B, 4])."""
        xs, ys, ks = [], [], []
        for _ in range(batch_size):
            case = self.cases[self.next_case % len(self.cases)]
            self.next_case += 1
            x, y, k = self._one(case)
            xs.append(x)
            ys.append(y)
            ks.append(k)
        return np.stack(xs), np.stack(ys)[:, None], np.asarray(ks, dtype=np.float32)

    def _one(self, case: Case) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
        if self.random_offsets:
            offset, kernel = self.combos[self.rng.integers(len(self.combos))]
        else:
            offset, kernel = self.fixed_offset, offset_kernel_combinations(self.pair_start)[0][1]
        centre = np.unravel_index(case.candidates[self.rng.integers(len(case.candidates))], case.mask.shape)
        shape = case.inputs.shape[1:]
        starts = [int(np.clip(c - p // 2, 0, s - p)) for c, p, s in zip(centre[:2], self.patch[:2], shape[:2])]
        si, ap = (slice(s, s + p) for s, p in zip(starts, self.patch[:2]))
        n_thick, lr_len = case.target.shape[2], self.patch[2] // SLICE_FACTOR
        if self.random_offsets and self.kernel_scheme == "aligned":
            # any start whose thick slices exist: first + lr_len - 1 <= n_thick (aligned_window's first)
            highest = min(shape[2] - self.patch[2], SLICE_FACTOR * (n_thick - lr_len + 1) + self.pair_start - 1)
            hr0 = int(np.clip(centre[2] - self.patch[2] // 2, 0, highest))
            j0, kernel = aligned_window(hr0, self.pair_start)
            return case.inputs[:, si, ap, hr0 : hr0 + self.patch[2]], case.target[si, ap, j0 : j0 + lr_len - 1], kernel
        lowest = -(offset // SLICE_FACTOR) if offset < 0 else 0
        highest = min(n_thick - lr_len, (shape[2] - self.patch[2] - offset) // SLICE_FACTOR)
        j0 = int(np.clip(round((centre[2] - self.patch[2] / 2 - offset) / SLICE_FACTOR), lowest, highest))
        hr0 = SLICE_FACTOR * j0 + offset
        x = case.inputs[:, si, ap, hr0 : hr0 + self.patch[2]]
        y = case.target[si, ap, j0 : j0 + lr_len]
        return x, y, kernel

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "next_case": self.next_case}

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.next_case = int(state["next_case"])
