"""Input normalisation that does not depend on the scanner's intensity scale (for MRI2MRI, paper 002).

Real scans arrive raw, rescaled or z-scored: each is ``a * x + b`` (a > 0) of the others. Dividing
by the 99th percentile (``masks.normalise_p99``) undoes ``a`` but not ``b``. Here both are undone:
the body mask comes from Otsu's threshold on the image mapped to [0, 1] by its own minimum and
maximum (the same mask for every ``a * x + b``), the background level is the median outside the
mask (the air, or the zeros of a skull-stripped scan), and the scale is the 99th percentile inside
the mask minus that level. The result is 0 in the background and 1 at the body's 99th percentile,
which equals ``normalise_p99`` for a scan whose background is exactly 0.
"""

from __future__ import annotations

import numpy as np

from .errors import MRSynthError
from .masks import body_mask

METHOD = "affine"
DESCRIPTION = (
    "affine-invariant: each input minus the median outside the body mask (its background level), divided by its "
    "99th percentile inside the mask minus that level; the mask is Otsu's on the last input mapped to [0, 1] by its "
    "own range, so raw, rescaled and z-scored inputs give the same network input; the output is in the same units "
    "of the target contrast (0 = background, 1.0 = its 99th percentile inside the body)"
)
_DIGITS = 9  # rounding of the [0, 1] image, so that a*x+b's last-bit differences cannot move a histogram bin


def invariant_mask(array: np.ndarray) -> np.ndarray:
    """The body mask of ``array``, identical for every ``a * array + b`` with a > 0."""
    values = np.asarray(array, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if low == high:
        raise MRSynthError(f"the image is constant ({low:g}): a body mask needs contrast, give a mask instead")
    return body_mask(np.round((values - low) / (high - low), _DIGITS))


def normalise_affine(array: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """``(array - background) / (p99 inside mask - background)`` and the (background, scale) used."""
    values = np.asarray(array, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != values.shape:
        raise MRSynthError(f"mask of shape {mask.shape} does not fit the image of shape {values.shape}")
    if not mask.any():
        raise MRSynthError("the mask is empty: give a mask that covers the body")
    inside = values[mask]
    # Without any background (a mask covering the whole field of view) the body's 1st percentile stands in.
    background = float(np.median(values[~mask])) if (~mask).any() else float(np.percentile(inside, 1))
    scale = float(np.percentile(inside, 99)) - background
    if scale <= 0:
        raise MRSynthError(
            f"the body's 99th percentile is not above the background level ({background:g}): the image has no "
            "contrast between body and background; check the mask or the input"
        )
    return ((values - background) / scale).astype(np.float32), (background, scale)


# Histogram standardisation (Nyul and Udupa 2000): percentiles inside the body mask, on the affine scale.
LANDMARK_QUANTILES = (1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0)


def landmarks(normalised: np.ndarray, mask: np.ndarray) -> list[float]:
    """The ``LANDMARK_QUANTILES`` percentiles of an ``normalise_affine``-d image inside ``mask``."""
    return [float(v) for v in np.percentile(np.asarray(normalised, dtype=np.float64)[mask], LANDMARK_QUANTILES)]


def standardise(normalised: np.ndarray, mask: np.ndarray, reference: list[float]) -> np.ndarray:
    """Map an ``normalise_affine``-d image's histogram onto ``reference`` landmarks (Nyul and Udupa 2000).

    Why: the affine normalisation fixes the background (0) and the body's 99th percentile (1), but
    not what lies between, and scanners differ there: the held-out T1c of ``docs/other-systems.md``
    has its brain median at 0.73 of that percentile where the training subjects have 0.41 and 0.53.
    A piecewise-linear map through (0, 0), each of the image's landmarks to its ``reference``
    value, and (1, 1) moves the tissue intensities to where training had them; above 1 it continues
    with the slope of its last segment, below 0 it is the identity, so the background stays put. It
    is monotonic, and since the landmarks move with any ``a * x + b`` of the raw scan, the result
    does not depend on the scanner's intensity scale either.
    """
    own = landmarks(normalised, mask)
    if len(reference) != len(own):
        raise MRSynthError(
            f"{len(reference)} reference landmarks for {len(own)} quantiles: the model's landmarks do not fit this "
            "version of mrsynth"
        )
    source = np.maximum.accumulate(np.clip([0.0, *own, 1.0], 0.0, 1.0))
    target = np.maximum.accumulate(np.clip([0.0, *reference, 1.0], 0.0, 1.0))
    keep = np.concatenate([[True], np.diff(source) > 1e-9])  # ties (a flat histogram stretch) keep their first point
    source, target = source[keep], target[keep]
    x = np.asarray(normalised, dtype=np.float64)
    out = np.interp(x, source, target)
    slope = (target[-1] - target[-2]) / (source[-1] - source[-2]) if len(source) > 1 else 1.0
    out = np.where(x > source[-1], target[-1] + (x - source[-1]) * slope, out)
    out = np.where(x < 0, x, out)
    return out.astype(np.float32)
