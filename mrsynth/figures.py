"""Figures like paper 000's Fig. 5: rows of volumes and error maps in three orthogonal slices.

Only matplotlib's object API with the Agg renderer is used (never pyplot), so figures are drawn
on headless machines and inside 3D Slicer without touching a GUI toolkit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from matplotlib.figure import Figure

from .errors import MRSynthError
from .files import atomic_path, full_suffix
from .volume_io import paper_index_axis

MAP_COLOURMAPS = {"RE": "inferno", "dSSIM": "viridis"}
_DEFAULT_MAP_COLOURMAP = "magma"
_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
_VIEWS = ("sagittal", "coronal", "axial")
_FIXED_AXIS = ("LR", "AP", "SI")  # the paper axis each view holds fixed; its index is centre[2 - column]


def orient_for_display(array: np.ndarray, image: sitk.Image) -> np.ndarray:
    """Flip a paper-order array of ``image`` so its axes increase towards superior, posterior, left.

    ``to_paper`` only permutes axes; the sign of each still follows the scan. With this orientation
    ``save_figure`` shows superior up, anterior to the left in sagittal slices and patient right on
    the viewer's left (radiological convention) in coronal and axial slices.
    """
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)  # [physical LPS, index]
    flipped = array
    for paper_axis, physical in enumerate((2, 1, 0)):  # SI is LPS z, AP is LPS y, LR is LPS x
        if direction[physical, paper_index_axis(image, paper_axis)] < 0:
            flipped = np.flip(flipped, axis=paper_axis)
    return flipped


def _slices(volume: np.ndarray, centre: Sequence[int]) -> list[np.ndarray]:
    si, ap, lr = centre
    return [volume[:, :, lr], volume[:, ap, :], volume[si, :, :]]


def _clip_to_unit(slice_: np.ndarray) -> np.ndarray:
    """Clip to the slice's 1st-99th percentile and map to 0-1 (paper 000, Fig. 5)."""
    low, high = np.percentile(slice_, (1, 99))
    if high <= low:
        return np.zeros_like(slice_, dtype=np.float32)
    return np.clip((slice_ - low) / (high - low), 0.0, 1.0)


def _map_limit(volume: np.ndarray) -> float:
    """A map's upper colour limit: its 99th percentile where non-zero, so outliers do not wash it out."""
    values = volume[volume > 0]
    if values.size == 0:
        return 1.0
    return float(np.percentile(values, 99)) or float(values.max())


def default_centre(shape: Sequence[int], mask: np.ndarray | None = None) -> tuple[int, int, int]:
    """The centre of the mask's bounding box, or of the volume without a (non-empty) mask."""
    if mask is not None and np.any(mask):
        corners = [np.flatnonzero(np.any(mask, axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
        return tuple(int((c[0] + c[-1]) // 2) for c in corners)  # type: ignore[return-value]
    return tuple(int(n // 2) for n in shape)  # type: ignore[return-value]


def save_figure(
    path: str | Path,
    panels: Mapping[str, np.ndarray],
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    centre: Sequence[int] | None = None,
    maps: Sequence[str] = ("RE", "dSSIM"),
    mask: np.ndarray | None = None,
    attribution: str | None = None,
) -> Path:
    """Draw one row per panel and sagittal, coronal and axial columns through ``centre``; write atomically.

    ``panels`` are same-shape arrays in paper order (SI, AP, LR), best oriented with
    ``orient_for_display``; ``spacing`` is the voxel size in mm along SI, AP, LR and sets the aspect
    ratio. Image rows are clipped slice by slice to their 1st-99th percentile; rows named in ``maps``
    keep their values and get their own colour map and colour bar. ``attribution`` (the data
    source's required credit, e.g. "BrainWeb phantom: Cocosco et al. 1997") is printed at the bottom.
    """
    suffix = full_suffix(path).lower()
    if suffix not in _FORMATS:
        raise MRSynthError(f"figure {path} has an unsupported extension: use one of {', '.join(_FORMATS)}")
    if not panels:
        raise MRSynthError("a figure needs at least one panel")
    shapes = {name: np.shape(volume) for name, volume in panels.items()}
    shape = next(iter(shapes.values()))
    if len(shape) != 3 or any(s != shape for s in shapes.values()):
        raise MRSynthError(f"figure panels must be 3D volumes of one shape, not {shapes}")
    centre = default_centre(shape, mask) if centre is None else tuple(int(c) for c in centre)
    if any(not 0 <= c < n for c, n in zip(centre, shape, strict=True)):
        raise MRSynthError(f"figure centre {centre} lies outside the volume of shape {shape}")
    sp_si, sp_ap, sp_lr = (float(s) for s in spacing)
    aspects = (sp_si / sp_ap, sp_si / sp_lr, sp_ap / sp_lr)
    widths = (shape[1] * sp_ap, shape[2] * sp_lr, shape[2] * sp_lr)
    height = max(shape[0] * sp_si, shape[1] * sp_ap)

    row_inches = 2.2
    fig = Figure(
        figsize=(row_inches * sum(widths) / height + 1.6, row_inches * len(panels) + 0.6),
        layout="constrained",
    )
    grid = fig.add_gridspec(len(panels), 3, width_ratios=widths)
    for row, (name, volume) in enumerate(panels.items()):
        volume = np.asarray(volume, dtype=np.float32)
        is_map = name in maps
        axes = [fig.add_subplot(grid[row, col]) for col in range(3)]
        limit = _map_limit(volume) if is_map else 1.0
        for col, (ax, slice_) in enumerate(zip(axes, _slices(volume, centre), strict=True)):
            shown = slice_ if is_map else _clip_to_unit(slice_)
            image = ax.imshow(
                shown,
                cmap=MAP_COLOURMAPS.get(name, _DEFAULT_MAP_COLOURMAP) if is_map else "gray",
                vmin=0.0,
                vmax=limit,
                aspect=aspects[col],
                origin="upper" if col == 2 else "lower",
                interpolation="nearest",
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"{_VIEWS[col]} ({_FIXED_AXIS[col]} {centre[2 - col]})")
            if col == 0:
                ax.set_ylabel(name)
        if is_map:
            fig.colorbar(image, ax=axes, shrink=0.9, pad=0.01)
    if attribution:
        fig.supxlabel(attribution, fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=_FORMATS[suffix], dpi=120)
    return Path(path)
