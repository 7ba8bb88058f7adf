"""Body masks and the intensity normalisation the metrics are computed on.

Paper 000 (section II.B) evaluates inside a body mask on images divided by their 99th percentile
inside the mask; these helpers give that without a segmentation tool. Runtime dependencies stay
numpy/scipy: the Otsu threshold is computed from a numpy histogram.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import MRSynthError

_OTSU_BINS = 256


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
