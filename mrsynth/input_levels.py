"""Does a scan reach the network at the intensity level it was trained on?

Inputs are divided by their 99th percentile inside the body mask (paper 000). That percentile moves
with what the scan covers: on an upper-head crop of the BrainWeb phantom every GE voxel came out
about 40 % brighter than in training, and the T2w model, which maps intensities nonlinearly, failed
(docs/experiments.md, "A per-voxel branch"). The median of a normalised input inside the body mask
shows it: 0.56 on the SynthSeg heads, 0.58 on the whole phantom, 0.83 on the crop. A model
records its training inputs' medians (``info.normalisation["input_levels"]``), and ``synthesize``
warns when a scan's are far from them. No library offers this check for our normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .checkpoint import ModelInfo
from .data import find_volume
from .masks import body_mask, normalise_p99
from .volume_io import read_volume, to_paper

# Relative distance from the training level beyond which a scan is reported: the SynthSeg heads lie
# within about 1 % of their mean, BrainWeb 3 % from it, the upper-head crop 48 %.
TOLERANCE = 0.15


def input_levels(arrays: Sequence[np.ndarray], mask: np.ndarray) -> list[float]:
    """The median of each (normalised) input inside ``mask``."""
    return [float(np.median(np.asarray(array)[mask])) for array in arrays]


def p99_levels(arrays: Sequence[np.ndarray]) -> list[float]:
    """``input_levels`` of raw inputs as ``synthesize`` normalises them by default: each divided by its
    99th percentile inside the body mask of the last input."""
    mask = body_mask(arrays[-1])
    return input_levels([normalise_p99(array, mask)[0] for array in arrays], mask)


def training_levels(folders: Sequence[str | Path], inputs: Sequence[str]) -> list[float]:
    """The mean ``p99_levels`` over training case folders (volumes named as ``inputs``)."""
    levels = []
    for folder in folders:
        arrays = [to_paper(read_volume(find_volume(Path(folder), name), name)) for name in inputs]
        levels.append(p99_levels(arrays))
    return [float(v) for v in np.mean(levels, axis=0)]


def level_warning(info: ModelInfo, levels: Sequence[float]) -> str | None:
    """A message naming each input whose level is more than ``TOLERANCE`` from training's, or None."""
    trained = info.normalisation.get("input_levels")
    if not trained:
        return None
    off = [
        f"{name} {level:.2f} (training {reference:.2f})"
        for name, level, reference in zip(info.inputs, levels, trained, strict=True)
        if abs(level - reference) > TOLERANCE * reference
    ]
    if not off:
        return None
    return (
        f"the inputs' median inside the body mask, after normalisation, is far from what model {info.name} was "
        f"trained on: {', '.join(off)}. The scan probably covers a different part of the body (field of view) or "
        "comes from another protocol, and the 99th-percentile normalisation then shifts every intensity: cover "
        "what training covered (the whole head), or give the input scales printed for a scan that does "
        "(--input-scales)"
    )
