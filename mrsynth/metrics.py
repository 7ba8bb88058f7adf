"""Image-similarity metrics of paper 000 (section II.F.2): MAE, MI, SSIM, plus PSNR and error maps.

All arrays are in paper order (SI, AP, LR); windows are given in the same order, so the paper's
21x21x3 SSIM window is 21 voxels along SI and AP and 3 along LR. Masks are boolean arrays of the
same shape; a metric "inside a mask" uses only the voxels where the mask is true.

Where a data range is needed (SSIM, PSNR) and none is given, it is ``ref.max() - ref.min()`` over the
evaluated region (the mask, or the whole volume): the reference's dynamic range is what errors are
judged against, and the background outside the mask should not widen it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .errors import MRSynthError

PAPER_WINDOW = (21, 21, 3)
SSIM_K1 = 0.01
SSIM_K2 = 0.03
MI_BINS = 128


def _pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise MRSynthError(
            f"prediction of shape {pred.shape} and reference of shape {ref.shape} differ: resample them to one grid"
        )
    return pred, ref


def _mask(mask: np.ndarray | None, shape: tuple[int, ...], name: str = "mask") -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise MRSynthError(f"{name} of shape {mask.shape} does not fit the images of shape {shape}")
    mask = mask.astype(bool, copy=False)
    if not mask.any():
        raise MRSynthError(f"the {name} is empty: give a {name} that covers the region to evaluate")
    return mask


def _region(array: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return array.ravel() if mask is None else array[mask]


def _data_range(ref: np.ndarray, mask: np.ndarray | None, data_range: float | None) -> float:
    if data_range is None:
        values = _region(ref, mask)
        data_range = float(values.max()) - float(values.min())
    if not data_range > 0:
        raise MRSynthError(
            f"the data range is {data_range:g}: the reference is constant in the evaluated region, "
            "so SSIM and PSNR are undefined; give a larger mask or a data range"
        )
    return float(data_range)


def mae(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute error, the paper's training loss, so the metric closest to what was optimised."""
    pred, ref = _pair(pred, ref)
    mask = _mask(mask, ref.shape)
    diff = np.abs(pred.astype(np.float64) - ref)
    return float(np.mean(_region(diff, mask)))


def mutual_information(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None, bins: int = MI_BINS) -> float:
    """Mutual information in nats from the joint histogram of the masked voxels.

    Each image is binned over its own min..max inside the mask, so MI does not depend on the
    intensity scale of either image (it forgives systematic over- or underestimation, paper 000).
    """
    pred, ref = _pair(pred, ref)
    mask = _mask(mask, ref.shape)
    if bins < 2:
        raise MRSynthError(f"mutual information needs at least 2 histogram bins, not {bins}")
    x = _region(pred, mask).astype(np.float64)
    y = _region(ref, mask).astype(np.float64)
    ranges = []
    for values in (x, y):
        low, high = float(values.min()), float(values.max())
        ranges.append((low, high) if high > low else (low - 0.5, low + 0.5))
    joint, _, _ = np.histogram2d(x, y, bins=bins, range=ranges)
    p_xy = joint / joint.sum()
    p_x = p_xy.sum(axis=1, keepdims=True)
    p_y = p_xy.sum(axis=0, keepdims=True)
    nonzero = p_xy > 0
    return float(np.sum(p_xy[nonzero] * np.log(p_xy[nonzero] / (p_x @ p_y)[nonzero])))


def _check_window(window: Sequence[int], shape: tuple[int, ...]) -> tuple[int, ...]:
    window = tuple(int(w) for w in window)
    if len(window) != len(shape):
        raise MRSynthError(f"the SSIM window {window} needs one size per image axis ({len(shape)})")
    if any(w < 1 or w % 2 == 0 for w in window):
        raise MRSynthError(f"the SSIM window {window} must have odd, positive sizes (e.g. 21 21 3)")
    if int(np.prod(window)) < 2:
        raise MRSynthError(f"the SSIM window {window} must hold more than one voxel")
    too_big = [f"{w} > {n}" for w, n in zip(window, shape, strict=True) if w > n]
    if too_big:
        raise MRSynthError(
            f"the SSIM window {window} is larger than the volume {shape} ({', '.join(too_big)}): use a smaller window"
        )
    return window


def ssim_map(
    pred: np.ndarray,
    ref: np.ndarray,
    window: Sequence[int] = PAPER_WINDOW,
    data_range: float | None = None,
) -> np.ndarray:
    """Local SSIM (Wang et al. 2004) over a uniform box window, one value per voxel (float64).

    Local means and (co)variances come from separable running sums (``scipy.ndimage.uniform_filter``),
    so the cost does not grow with the window: seconds for a 240x240x155 volume. Variances use the
    sample normalisation N/(N-1) and K1=0.01, K2=0.03, as scikit-image's ``structural_similarity``
    with ``use_sample_covariance=True``; the volume edge is handled by mirror reflection
    (scipy's "reflect" mode, edge voxel repeated), as in scikit-image, whose full map this equals for
    cubic windows. Unlike scikit-image, the border is not cropped: masks decide what counts.
    """
    pred, ref = _pair(pred, ref)
    size = _check_window(window, ref.shape)
    data_range = _data_range(ref, None, data_range)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    n = float(np.prod(size))
    cov_norm = n / (n - 1.0)

    x = pred.astype(np.float64)
    y = ref.astype(np.float64)
    mu_x = ndimage.uniform_filter(x, size, mode="reflect")
    mu_y = ndimage.uniform_filter(y, size, mode="reflect")

    def central_moment(a: np.ndarray, b: np.ndarray, mu_a: np.ndarray, mu_b: np.ndarray) -> np.ndarray:
        moment = ndimage.uniform_filter(a * b, size, mode="reflect")
        moment -= mu_a * mu_b
        moment *= cov_norm
        return moment

    var_sum = central_moment(x, x, mu_x, mu_x)
    var_sum += central_moment(y, y, mu_y, mu_y)
    cov = central_moment(x, y, mu_x, mu_y)
    del x, y

    # numerator (2 mu_x mu_y + C1)(2 cov + C2) / denominator (mu_x^2 + mu_y^2 + C1)(var_x + var_y + C2),
    # computed in place to keep the peak memory near seven volumes.
    cov *= 2.0
    cov += c2
    var_sum += c2
    product = mu_x * mu_y
    product *= 2.0
    product += c1
    cov *= product
    np.square(mu_x, out=mu_x)
    mu_x += np.square(mu_y, out=mu_y)
    mu_x += c1
    var_sum *= mu_x
    cov /= var_sum
    return cov


def ssim(
    pred: np.ndarray,
    ref: np.ndarray,
    mask: np.ndarray | None = None,
    window: Sequence[int] = PAPER_WINDOW,
    data_range: float | None = None,
) -> float:
    """Mean SSIM inside the mask (whole volume without one); see ``ssim_map``."""
    pred, ref = _pair(pred, ref)
    mask = _mask(mask, ref.shape)
    data_range = _data_range(ref, mask, data_range)
    return float(np.mean(_region(ssim_map(pred, ref, window, data_range), mask)))


def psnr(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB inside the mask; ``inf`` for identical images."""
    pred, ref = _pair(pred, ref)
    mask = _mask(mask, ref.shape)
    data_range = _data_range(ref, mask, data_range)
    mse = float(np.mean(_region((pred.astype(np.float64) - ref) ** 2, mask)))
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def rmse(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root mean square error inside the mask (paper 003, Table 1)."""
    pred, ref = _pair(pred, ref)
    mask = _mask(mask, ref.shape)
    return float(np.sqrt(np.mean(_region((pred.astype(np.float64) - ref) ** 2, mask))))


def relative_error_map(
    pred: np.ndarray, ref: np.ndarray, floor: float = 0.05, mask: np.ndarray | None = None
) -> np.ndarray:
    """Voxel-wise relative error |pred - ref| / max(|ref|, floor * p99(|ref|)) as float32.

    The floor keeps the map finite and readable where the reference is near zero (background,
    dark bone, air in sinuses), which would otherwise divide by ~0 and outshine every real error.
    The 99th percentile is taken inside the mask when one is given (the whole volume otherwise).
    """
    pred, ref = _pair(pred, ref)
    mask = _mask(mask, ref.shape)
    if not floor > 0:
        raise MRSynthError(f"the relative-error floor must be positive, not {floor:g}")
    magnitude = np.abs(ref.astype(np.float64))
    scale = float(np.percentile(_region(magnitude, mask), 99))
    if scale <= 0:
        raise MRSynthError("the reference is zero in the evaluated region: the relative error is undefined")
    denominator = np.maximum(magnitude, floor * scale)
    return (np.abs(pred.astype(np.float64) - ref) / denominator).astype(np.float32)


def tenengrad(image: np.ndarray, mask: np.ndarray | None = None, threshold: float = 0.0) -> float:
    """Tenengrad sharpness of paper 004: the Sobel gradient magnitude where it exceeds ``threshold``.

    No reference is needed. A 2D image is one slice; a paper-order 3D volume is taken as axial
    slices (gradients along AP and LR only, as 004 worked on axial slices). The Sobel kernels are
    divided by 8 so a gradient is in intensity per voxel; the value is the mean over the mask (the
    whole image by default) rather than 004's sum, so it does not grow with the image's size.
    Magnitudes at or below ``threshold`` count as 0.
    """
    array = np.asarray(image, dtype=np.float64)
    if array.ndim not in (2, 3):
        raise MRSynthError(f"tenengrad takes a 2D slice or a 3D volume, not an array of shape {array.shape}")
    mask = _mask(mask, array.shape)
    axes = (0, 1) if array.ndim == 2 else (1, 2)
    gi, gj = (_sobel_in_plane(array, a, b) for a, b in (axes, axes[::-1]))
    magnitude = np.hypot(gi, gj)
    magnitude[magnitude <= threshold] = 0.0
    return float(np.mean(_region(magnitude, mask)))


def _sobel_in_plane(array: np.ndarray, axis: int, other: int) -> np.ndarray:
    """Sobel derivative along ``axis``, smoothed along ``other`` only (so 3D slices stay separate), / 8."""
    derivative = ndimage.correlate1d(array, [-1.0, 0.0, 1.0], axis=axis, mode="nearest")
    return ndimage.correlate1d(derivative, [1.0, 2.0, 1.0], axis=other, mode="nearest") / 8.0
