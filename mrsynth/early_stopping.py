"""The early-stopping rule of paper 000 (section II.D.1).

Training stops when the validation loss, smoothed by a Gaussian of sigma 10 epochs, has not fallen
by 0.1 % below its lowest value so far for 80 epochs in a row. The smoothing is redone over the
whole history at every epoch (the newest values have fewer neighbours, so the filter's border mode
repeats the last value), which is all that can be known at that epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d


@dataclass
class EarlyStopping:
    """Feed one validation loss per epoch to ``update``; it returns True when training should stop."""

    patience: int = 80
    min_delta: float = 0.001  # relative improvement on the best smoothed value that counts
    sigma: float = 10.0
    history: list[float] = field(default_factory=list)

    def smoothed(self) -> np.ndarray:
        values = np.asarray(self.history, dtype=float)
        return gaussian_filter1d(values, self.sigma, mode="nearest") if self.sigma > 0 else values

    def epochs_since_improvement(self) -> int:
        """Epochs since the smoothed loss last fell by ``min_delta`` below its best."""
        best, last = np.inf, 0
        for epoch, value in enumerate(self.smoothed()):
            if value < best * (1 - self.min_delta):
                best, last = value, epoch
        return len(self.history) - 1 - last

    def update(self, val_loss: float) -> bool:
        self.history.append(float(val_loss))
        return self.epochs_since_improvement() >= self.patience


def stopping_epoch(losses: Sequence[float], **rule: float) -> int | None:
    """The epoch (0-based) at which ``EarlyStopping`` stops on a whole loss curve, or None."""
    stopper = EarlyStopping(**rule)  # type: ignore[arg-type]
    for epoch, loss in enumerate(losses):
        if stopper.update(loss):
            return epoch
    return None
