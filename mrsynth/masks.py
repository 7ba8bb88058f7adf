"""Body, posterior-dilated and sampling masks, and the intensity normalisation.

Paper 000 (section II.B) makes body masks by thresholding and hole filling, dilates them on the
posterior side (so registration sees the back/table interface) and by the patch size (so a sampled
patch holds at most about half background), and divides images by their 99th percentile inside the
mask. These helpers give that without a segmentation tool: the Otsu threshold is computed from a
numpy histogram. Bone masks are user inputs; ``check_mask`` validates them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .errors import MRSynthError
from .volume_io import paper_index_axis, paper_spacing, same_grid, to_paper

_OTSU_BINS = 256
OUTSIDE = -1.0  # value of voxels that registration pushed outside the moving image's field of view


def otsu_threshold(array: np.ndarray, bins: int = _OTSU_BINS) -> float:
    """Otsu's threshold: the grey value that maximises the between-class variance of the histogram."""
    values = np.asarray(array, dtype=np.float64).ravel()
    low, high = float(values.min()), float(values.max())
    if low == high:
        raise MRSynthError(f"the image is constant ({low:g}): a body mask needs contrast, give a mask instead")
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    centres = 0.5 * (edges[:-1] + edges[1:])
    weight_below = np.cumsum(counts, dtype=np.float64)
    weight_above = weight_below[-1] - weight_below
    sum_below = np.cumsum(counts * centres)
    mean_below = sum_below / np.maximum(weight_below, 1)
    mean_above = (sum_below[-1] - sum_below) / np.maximum(weight_above, 1)
    between = weight_below * weight_above * (mean_below - mean_above) ** 2
    # Splitting after bin i puts the threshold on the upper edge of bin i.
    return float(edges[1:][int(np.argmax(between[:-1]))])


def body_mask(array: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """The body (or head) as a boolean mask: voxels above Otsu's (or the given) threshold.

    Only the largest connected component is kept, so that noise and ghosts in the background do
    not count, and enclosed holes (ventricles, sinuses, dark bone) are filled, so that they do.
    """
    array = np.asarray(array)
    cut = otsu_threshold(array) if threshold is None else float(threshold)
    foreground = array > cut
    labels, count = ndimage.label(foreground)
    if count == 0:
        raise MRSynthError(
            f"no voxel lies above the body-mask threshold {cut:g}: give a lower threshold or a mask file"
        )
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return ndimage.binary_fill_holes(labels == int(np.argmax(sizes)))


def normalise_p99(array: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    """Divide by the 99th percentile inside the mask, so that scans with arbitrary units compare."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != np.shape(array):
        raise MRSynthError(f"mask of shape {mask.shape} does not fit the image of shape {np.shape(array)}")
    if not mask.any():
        raise MRSynthError("the mask is empty: give a mask that covers the body")
    p99 = float(np.percentile(np.asarray(array)[mask], 99))
    if p99 <= 0:
        raise MRSynthError(
            f"the 99th percentile inside the mask is {p99:g}, not positive: "
            "check the mask, or evaluate without normalisation"
        )
    return np.asarray(array) / p99, p99


def posterior_step(image: sitk.Image) -> int:
    """+1 or -1: the direction along paper axis 1 (AP) of a paper-order array that points posterior.

    Read from the direction cosines (LPS: physical +y is posterior), so flipped and oblique
    acquisitions dilate towards the patient's back, not towards an index direction.
    """
    axis = paper_index_axis(image, 1)
    return 1 if np.array(image.GetDirection()).reshape(3, 3)[1, axis] > 0 else -1


def dilate_posterior(mask: np.ndarray, image: sitk.Image, mm: float) -> np.ndarray:
    """Grow a paper-order mask by ``mm`` millimetres towards posterior only (paper 000, section II.B)."""
    mask = np.asarray(mask, dtype=bool)
    steps = int(round(mm / paper_spacing(image)[1]))
    if steps <= 0:
        return mask.copy()
    step = posterior_step(image)
    out = mask.copy()
    length = mask.shape[1]
    for shift in range(1, min(steps, length - 1) + 1):
        if step > 0:
            out[:, shift:] |= mask[:, :-shift]
        else:
            out[:, :-shift] |= mask[:, shift:]
    return out


def sampling_mask(mask: np.ndarray, patch: Sequence[int]) -> np.ndarray:
    """Body mask dilated by a box of the patch size: a patch centred in it holds at most ~50% background.

    A separable maximum filter does the box dilation in linear time, which a structuring element
    of 56 x 56 x 32 voxels would not.
    """
    out = np.asarray(mask).astype(np.uint8)
    for axis, size in enumerate(patch):
        out = ndimage.maximum_filter1d(out, size=int(size), axis=axis, mode="constant")
    return out.astype(bool)


def check_mask(mask: sitk.Image, reference: sitk.Image, name: str, binary: bool = False) -> np.ndarray:
    """A user's mask as a paper-order boolean array, after checking it fits ``reference`` and is usable.

    Masks of the wrong grid, empty masks and (with ``binary``) masks holding values other than
    0 and 1 (e.g. a label map or a probability map given as a bone mask) are refused by name.
    """
    if not same_grid(mask, reference):
        raise MRSynthError(
            f"{name} lies on another grid than the image it belongs to (size {mask.GetSize()} vs "
            f"{reference.GetSize()}, spacing {mask.GetSpacing()} vs {reference.GetSpacing()}): "
            "give the mask on that image's grid"
        )
    array = to_paper(mask)
    if binary:
        values = np.unique(array)
        if not np.all(np.isin(values, (0, 1))):
            shown = ", ".join(f"{v:g}" for v in values[:6]) + (" ..." if len(values) > 6 else "")
            raise MRSynthError(f"{name} is not binary (values {shown}): give a mask of 0 (outside) and 1 (inside)")
    inside = array > 0
    if not inside.any():
        raise MRSynthError(f"{name} is empty: give a mask that covers the structure")
    return inside
