"""CT on the simulator's anatomies (paper 004's input modality) and CT windowing.

Each tissue of the MR simulator gets a CT number in Hounsfield units from ``resources/ct_hu.json``
(published values, cited there), a smooth within-tissue variation, a Gaussian point-spread and
Gaussian HU noise, so that CT and MR of one label map are perfectly paired. The MR simulation is
untouched: CT noise comes from its own random stream.

Windowing maps HU to [0, 1] as a radiologist's display window does (004, "image enhancement":
truncate to a window and rescale, raising soft-tissue contrast). 004 gives no window values; the
defaults are the standard brain window (level 40, width 80 HU) and a wide window (level 0, width
2000 HU) that keeps air, fat and bone apart, which the brain window merges into 0 or 1.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources

import numpy as np
from scipy import ndimage

from .errors import MRSynthError

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
BRAIN_WINDOW = (40.0, 80.0)
WIDE_WINDOW = (0.0, 2000.0)
DEFAULT_WINDOWS = (BRAIN_WINDOW, WIDE_WINDOW)


def load_hu_table() -> dict:
    """The packaged HU table (tissues, sources, blur and noise settings)."""
    text = (resources.files("mrsynth") / "resources" / "ct_hu.json").read_text(encoding="utf-8")
    return json.loads(text)


def tissue_hu(names: Sequence[str], table: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread (HU) of each named tissue, in the given order; a tissue missing from the table raises."""
    table = load_hu_table() if table is None else table
    missing = [n for n in names if n not in table["tissues"]]
    if missing:
        raise MRSynthError(f"the CT HU table has no value for tissue(s) {', '.join(missing)}: add them to ct_hu.json")
    means = np.array([table["tissues"][n]["mean"] for n in names], dtype=np.float32)
    spreads = np.array([table["tissues"][n]["spread"] for n in names], dtype=np.float32)
    return means, spreads


def simulate_ct(
    tissues: np.ndarray,
    names: Sequence[str],
    spacing: Sequence[float],
    rng: np.random.Generator,
    table: dict | None = None,
    noise_sigma: float | None = None,
) -> np.ndarray:
    """CT in HU (float32) of a tissue-index volume (indices into ``names``) with voxel ``spacing`` in mm.

    Tissue mean + spread x smooth unit-variance texture, then the Gaussian PSF, then white noise
    (``noise_sigma`` HU, default the table's; 0 for none).
    """
    table = load_hu_table() if table is None else table
    acquisition = table["acquisition"]
    means, spreads = tissue_hu(names, table)
    spacing = np.asarray(spacing, dtype=np.float64)
    texture = ndimage.gaussian_filter(
        rng.standard_normal(tissues.shape, dtype=np.float32), acquisition["texture_sigma_mm"] / spacing
    )
    texture /= max(float(texture.std()), 1e-12)
    hu = means[tissues] + spreads[tissues] * texture
    psf_sigma = acquisition["psf_fwhm_mm"] / FWHM_PER_SIGMA / spacing
    hu = ndimage.gaussian_filter(hu, psf_sigma, output=np.float32)
    sigma = float(acquisition["noise_sigma_hu"] if noise_sigma is None else noise_sigma)
    if sigma < 0:
        raise MRSynthError(f"CT noise sigma {sigma} HU is negative: give 0 or more")
    if sigma:
        hu += sigma * rng.standard_normal(hu.shape, dtype=np.float32)
    return hu.astype(np.float32)


def window(hu: np.ndarray | object, level: float, width: float):
    """HU clipped to [level - width/2, level + width/2] and scaled to [0, 1]; numpy arrays or torch tensors."""
    if not width > 0:
        raise MRSynthError(f"window width {width} HU is not positive: give a width such as 80 (brain)")
    low = level - width / 2.0
    return ((hu - low) / width).clip(0.0, 1.0)
