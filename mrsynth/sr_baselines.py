"""What super-resolution must beat (paper 003, Table 1): tricubic, Fourier and sparse-coding SR.

All work along the slice axis of a thick-slice array in paper order and return the thin grid of
``thick_slices`` (thin slice i at thick position ``(i - (factor - 1) / 2) / factor``).

- Tricubic interpolation (TCI): cubic B-spline (``scipy.ndimage``); only the slice axis changes
  grid, so the tricubic interpolant reduces to the cubic one along that axis.
- Fourier interpolation (FI): the thick slices' k-space zero-padded to the thin grid, i.e. the
  trigonometric interpolant (periodic; the Nyquist term split between +/- frequencies).
- Sparse-coding SR (ScSR; the paper's comparison, after Yang et al. 2010 and Wang et al. 2014), in
  Zeyde et al.'s (2010) form: a dictionary learned (scikit-learn) on interpolated patches minus their
  mean, sparse codes by OMP, and the matching dictionary of thin-minus-interpolated residual patches
  by least squares on the same codes (Yang's joint learning gave residuals worse than none on our
  data). A new patch's code applied to the residual dictionary gives its residual; overlapping
  patches are averaged.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import MRSynthError
from .thick_slices import apply_along, check_factor, make_thick, thin_positions, to_thin


def tricubic(thick: np.ndarray, axis: int, factor: int, thin: int | None = None) -> np.ndarray:
    """Cubic B-spline interpolation onto the thin grid (the MRSR network's input, too)."""
    return to_thin(thick, axis, factor, thin)


def fourier_matrix(thick: int, thin: int, factor: int) -> np.ndarray:
    """The [thin, thick] matrix of trigonometric (zero-padded k-space) interpolation."""
    positions = thin_positions(thin, factor)
    ks = np.arange(-(thick // 2), thick // 2 + 1)
    weights = np.ones(len(ks))
    if thick % 2 == 0:  # the Nyquist bin is shared by +/- thick/2
        weights[[0, -1]] = 0.5
    delta = positions[:, None, None] - np.arange(thick)[None, :, None]
    return (weights * np.cos(2 * np.pi * ks * delta / thick)).sum(-1) / thick


def fourier(thick: np.ndarray, axis: int, factor: int, thin: int | None = None) -> np.ndarray:
    """Fourier interpolation onto the thin grid."""
    factor = check_factor(factor)
    count = thick.shape[axis]
    thin = count * factor if thin is None else thin
    return apply_along(fourier_matrix(count, thin, factor), thick, axis)


def _patches(volume: np.ndarray, size: int) -> np.ndarray:
    return sliding_window_view(volume, (size, size, size))


@dataclass
class ScSR:
    """Sparse-coding super-resolution with a joint dictionary (fit on thin volumes, then predict)."""

    factor: int
    axis: int
    patch: int = 5
    atoms: int = 256
    nonzero: int = 3
    samples: int = 20000
    epochs: int = 20
    seed: int = 0
    low_dict: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    high_dict: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    def fit(self, volumes: list[np.ndarray], masks: list[np.ndarray]) -> ScSR:
        """Learn the dictionary from thin volumes (thick slices made by the forward model)."""
        from sklearn.decomposition import MiniBatchDictionaryLearning
        from sklearn.exceptions import ConvergenceWarning

        rng = np.random.default_rng(self.seed)
        lows, highs = [], []
        per_volume = -(-self.samples // len(volumes))
        for volume, mask in zip(volumes, masks, strict=True):
            low = tricubic(make_thick(volume, self.axis, self.factor), self.axis, self.factor, volume.shape[self.axis])
            centres = np.argwhere(mask[self._centres(mask.shape)])  # indexed by patch corner
            if not len(centres):
                raise MRSynthError("a ScSR training mask has no voxel a whole patch fits around: give a larger mask")
            chosen = centres[rng.choice(len(centres), size=min(per_volume, len(centres)), replace=False)]
            low_p, high_p = _patches(low, self.patch), _patches(volume - low, self.patch)
            lows.append(low_p[tuple(chosen.T)].reshape(len(chosen), -1))
            highs.append(high_p[tuple(chosen.T)].reshape(len(chosen), -1))
        low_f = np.concatenate(lows)
        low_f -= low_f.mean(1, keepdims=True)
        high_f = np.concatenate(highs)
        learner = MiniBatchDictionaryLearning(
            n_components=self.atoms,
            alpha=0.05,
            fit_algorithm="cd",
            batch_size=256,
            max_iter=self.epochs,
            random_state=self.seed,
            transform_algorithm="omp",
            transform_n_nonzero_coefs=self.nonzero,
        )
        scale = float(np.median(np.linalg.norm(low_f, axis=1))) + 1e-12  # a sparsity weight that fits the data
        with warnings.catch_warnings():  # a few inexact lasso steps do not matter for a dictionary
            warnings.filterwarnings("ignore", category=ConvergenceWarning)
            self.low_dict = learner.fit(low_f / scale).components_
        codes = self._encode(low_f)
        gram = codes.T @ codes + 1e-6 * np.eye(self.atoms)
        self.high_dict = np.linalg.solve(gram, codes.T @ high_f)
        return self

    def _encode(self, features: np.ndarray) -> np.ndarray:
        """OMP codes; flat patches stop OMP early (nothing left to explain), which is not worth a warning."""
        from sklearn.decomposition import sparse_encode

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Orthogonal matching pursuit ended prematurely")
            return sparse_encode(features, self.low_dict, algorithm="omp", n_nonzero_coefs=self.nonzero)

    def _centres(self, shape: tuple[int, ...]) -> tuple[slice, ...]:
        """The centres of the patches that lie inside the volume (their corners are these minus patch // 2)."""
        c = self.patch // 2
        return tuple(slice(c, n - self.patch + 1 + c) for n in shape)

    def predict(self, low: np.ndarray, mask: np.ndarray | None = None, stride: int = 2) -> np.ndarray:
        """Super-resolve an interpolated (tricubic) thin-grid volume; voxels no patch covers keep ``low``."""
        if self.low_dict is None:
            raise MRSynthError("ScSR has no dictionary yet: call fit first")
        low = np.asarray(low, dtype=np.float32)
        if any(n < self.patch for n in low.shape):
            raise MRSynthError(f"volume {low.shape} is smaller than the ScSR patch {self.patch}: give a larger one")
        grids = [sorted(set(range(0, n - self.patch + 1, stride)) | {n - self.patch}) for n in low.shape]
        corners = np.stack(np.meshgrid(*grids, indexing="ij"), -1).reshape(-1, 3)
        if mask is not None:
            c = self.patch // 2
            corners = corners[np.asarray(mask, dtype=bool)[tuple((corners + c).T)]]
        total = np.zeros(low.shape, dtype=np.float64)
        weight = np.zeros(low.shape, dtype=np.float64)
        view = _patches(low, self.patch)
        offsets = np.stack(np.meshgrid(*[np.arange(self.patch)] * 3, indexing="ij"), -1).reshape(-1, 3)
        for start in range(0, len(corners), 20000):
            chunk = corners[start : start + 20000]
            feats = view[tuple(chunk.T)].reshape(len(chunk), -1).astype(np.float64)
            feats -= feats.mean(1, keepdims=True)
            codes = self._encode(feats)
            residual = codes @ self.high_dict
            idx = (chunk[:, None, :] + offsets[None]).reshape(-1, 3)
            np.add.at(total, tuple(idx.T), residual.ravel())
            np.add.at(weight, tuple(idx.T), 1.0)
        covered = weight > 0
        out = low.astype(np.float64)
        out[covered] += total[covered] / weight[covered]
        return out.astype(np.float32)
