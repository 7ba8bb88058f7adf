"""Paired comparison of two configurations, as paper 000 reported significance (section III).

Each configuration gives one score per (patient, repetition); pairs share patient and repetition,
so a paired t-test (scipy's ``ttest_rel``) asks whether the mean difference is zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .errors import MRSynthError


@dataclass(frozen=True)
class PairedTest:
    mean_difference: float  # mean of a - b
    statistic: float
    p_value: float
    pairs: int

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha


def paired_t_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> PairedTest:
    """Two-sided paired t-test of scores ``a`` and ``b`` (same shape, e.g. patients x repetitions)."""
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if np.shape(a) != np.shape(b):
        raise MRSynthError(f"paired scores need the same shape, got {np.shape(a)} and {np.shape(b)}")
    if x.size < 2:
        raise MRSynthError(f"a paired t-test needs at least 2 pairs, got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise MRSynthError("paired scores hold NaN or Inf: drop the failed runs first")
    result = stats.ttest_rel(x, y)
    return PairedTest(float(np.mean(x - y)), float(result.statistic), float(result.pvalue), int(x.size))
