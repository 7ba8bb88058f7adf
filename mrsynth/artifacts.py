"""A measure of the slice-dependent artifact of paper 000 (Fig. 6 and 8).

A network that learns which of the four high-resolution slices under a thick slice counts makes
sTSE_HR change with the slice's position in its group: every fourth LR slice looks alike. That shows
as a peak at the period of ``factor`` slices in the LR profile of the image. The measure is the share
of the detrended profile's power in that frequency: near 1 / (number of frequencies) for no artifact,
approaching 1 when the periodic pattern dominates.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from .errors import MRSynthError
from .highlow import SLICE_FACTOR


def slice_periodicity(hr: np.ndarray, mask: np.ndarray, factor: int = SLICE_FACTOR) -> float:
    """Share of the LR profile's power at the period of ``factor`` slices (paper order, LR last).

    The profile is each LR slice's mean inside ``mask``, detrended by a moving average over one
    period (which removes anatomy slower than the period and nothing of the period itself, since a
    full period averages to its mean).
    """
    if hr.shape != mask.shape:
        raise MRSynthError(f"image {hr.shape} and mask {mask.shape} differ in shape")
    counts = mask.sum(axis=(0, 1))
    slices = np.flatnonzero(counts > 0)
    if slices.size < 4 * factor:
        raise MRSynthError(f"the mask covers {slices.size} LR slices: at least {4 * factor} are needed")
    profile = (np.where(mask, hr, 0).sum(axis=(0, 1))[slices] / counts[slices]).astype(np.float64)
    length = (profile.size // factor) * factor  # a whole number of periods: the frequency falls on a bin
    detrended = profile[:length] - uniform_filter1d(profile[:length], factor, mode="nearest")
    power = np.abs(np.fft.rfft(detrended - detrended.mean())) ** 2
    total = power[1:].sum()
    return float(power[length // factor] / total) if total > 0 else 0.0
