"""Reference points a synthesized image must beat: what a user could get without a network."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk


def bspline_upsample(thick: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """The acquired thick-slice image resampled onto the high-resolution grid by cubic B-spline."""
    image = sitk.Resample(thick, reference, sitk.Transform(), sitk.sitkBSpline, 0.0, sitk.sitkFloat32)
    return sitk.Clamp(image, sitk.sitkFloat32, lowerBound=0.0)


def best_linear_map(inputs: Sequence[np.ndarray], target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The least-squares global map a * input_1 + b * input_2 + ... + c fitted to the target inside the mask.

    It is fitted against the truth, so it is the best any global linear combination of the inputs can do.
    """
    design = np.stack([x[mask] for x in inputs] + [np.ones(int(mask.sum()), dtype=np.float32)], axis=1)
    coefficients, *_ = np.linalg.lstsq(design.astype(np.float64), target[mask].astype(np.float64), rcond=None)
    out = sum(c * x for c, x in zip(coefficients[:-1], inputs)) + coefficients[-1]
    return np.asarray(out, dtype=np.float32)
