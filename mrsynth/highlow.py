"""The High-to-low approach's downsampling kernel and its random offsets (paper 000, section II.E.1, Fig. 3).

The network's high-resolution output (sTSE_HR) is reduced along LR by a 1x1x4 strided convolution to
sTSE_LR and compared with the thick TSE. A fixed kernel such as [1/2, 1/2, 0, 0] lets the network
learn which of the four slices counts (slice-dependent behaviour), so each training patch is
shifted by a random offset and the kernel weights move with it. The combinations below have the
three properties the paper states for Fig. 3:

* from the network's side every kernel tap is weighted 1/4 on average and is used in exactly half
  of the combinations;
* from the image's side the two high-resolution slices most similar to a thick slice (the "pair")
  get weight 1/3 each and their outer neighbours 1/6 each, i.e. the average kernel
  [1/6, 1/3, 1/3, 1/6] centred on the pair.

With the pair at slices 4j + p and 4j + p + 1 of thick slice j, the six equally likely combinations
are (offset o, kernel), where the patch starts at high-resolution slice 4 * j0 + o:

====================  =====================  =============
image slices weighted  kernel                 offset
====================  =====================  =============
pair                   [1/2, 1/2, 0, 0]       p        (x1)
pair                   [0, 1/2, 1/2, 0]       p - 1    (x2)
pair                   [0, 0, 1/2, 1/2]       p - 2    (x1)
pair's neighbours      [1/2, 0, 0, 1/2]       p - 1    (x2)
====================  =====================  =============

The paper's data had the pair at p = 0 (offsets 0, -1, -2; "the [1/6, 1/3, 1/3, 1/6] kernel only
works for an offset of -1"). Our simulator's slice profile [1/6, 1/3, 1/3, 1/6] puts it at p = 1.
``estimate_pair_start`` finds p from data the way the paper did (similarity of each GE slice phase
to the thick TSE), so real data need no hand-set value.

The Fig. 3 scheme has a cost the paper did not measure: the network, blind to the offset, must fit
every combination at once, so it learns pair mean = neighbours' mean = thick value, a low-pass along
LR. For a linear network under L2 the optimum is the truth filtered by E[h]^2 / E[h^2] (h the combinations'
frequency responses): 0.11 at the 4-slice period. The frozen kernel of section II.E.6 then sharpens
it back and comes out centre-heavy, as in the paper's Table A1. The ``aligned`` scheme
(``aligned_window``) keeps the random offsets, which is what hides the slice phase from the network,
but always reduces with the average kernel itself, placed on the image's own thick slices: the patch
may start at any slice, and the strided kernel gets ``2 * SLICE_FACTOR`` taps so that it can sit at
any phase inside its window. Its optimum is the truth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

SLICE_FACTOR = 4
KERNEL_SCHEMES = ("fig3", "aligned")
# The paper's average weighting of the four slices around the most similar pair (Fig. 3, top right)
AVERAGE_KERNEL = (1 / 6, 1 / 3, 1 / 3, 1 / 6)

# One kernel (configuration k, offset 0), or kernels by LR offset of the window (section IV.C)
LrKernels = Sequence[float] | Mapping[int, Sequence[float]]

_HALF = 0.5
# (offset relative to p, kernel, multiplicity)
_SCHEME = (
    (0, (_HALF, _HALF, 0.0, 0.0), 1),
    (-1, (0.0, _HALF, _HALF, 0.0), 2),
    (-2, (0.0, 0.0, _HALF, _HALF), 1),
    (-1, (_HALF, 0.0, 0.0, _HALF), 2),
)


def offset_kernel_combinations(pair_start: int) -> list[tuple[int, tuple[float, ...]]]:
    """All equally likely (offset, kernel) combinations of Fig. 3 for a given pair position."""
    combos: list[tuple[int, tuple[float, ...]]] = []
    for offset, kernel, count in _SCHEME:
        combos.extend([(pair_start + offset, kernel)] * count)
    return combos


def inference_kernel(pair_start: int) -> tuple[float, ...]:
    """The kernel used at offset 0 when building sTSE_LR at inference.

    Where the training average [1/6, 1/3, 1/3, 1/6] fits in the offset-0 window (pair at p = 1), it
    is used: it is exactly what the network was trained against on average. Otherwise (the paper's
    p = 0) the pair kernel [1/2, 1/2, 0, 0] at the pair's position is used, as in section II.F.1.
    """
    if pair_start == 1:
        return AVERAGE_KERNEL
    kernel = [0.0] * SLICE_FACTOR
    kernel[pair_start] = kernel[pair_start + 1] = _HALF
    return tuple(kernel)


def downsample_lr(hr: torch.Tensor, kernel: torch.Tensor | Sequence[float], factor: int = SLICE_FACTOR) -> torch.Tensor:
    """Reduce the last (LR) axis by ``factor`` with a strided 1x1xK kernel.

    ``kernel`` is one kernel of K weights or one per batch item (shape [B, K]); K is a multiple of
    ``factor``. K = ``factor`` gives one output slice per ``factor`` input slices; a longer kernel
    overlaps its windows and gives (length - K) / factor + 1 slices.
    """
    length = hr.shape[-1]
    k = torch.as_tensor(kernel, dtype=hr.dtype, device=hr.device)
    taps = k.shape[-1]
    if length % factor or taps % factor or taps > length:
        raise ValueError(
            f"LR length {length} and kernel size {taps} must be multiples of {factor}, with the kernel no longer"
        )
    blocks = hr.unfold(-1, taps, factor)
    if k.ndim == 1:
        return blocks @ k
    view = [k.shape[0]] + [1] * (blocks.ndim - 2) + [taps]
    return (blocks * k.reshape(view)).sum(-1)


def aligned_window(
    hr_start: int, pair_start: int, kernel: Sequence[float] = AVERAGE_KERNEL
) -> tuple[int, tuple[float, ...]]:
    """The ``aligned`` scheme's reduction of a patch whose LR axis starts at high-resolution slice ``hr_start``.

    ``kernel`` (four weights) is centred on thick slice j's pair, i.e. its first tap is slice
    4j + p - 1. Returns the first thick slice j whose four slices lie inside the patch and the
    ``2 * SLICE_FACTOR``-tap kernel that, strided by ``SLICE_FACTOR`` over the patch, gives thick
    slices j, j + 1, ... (one fewer than the patch's length / ``SLICE_FACTOR``).
    """
    if len(kernel) != SLICE_FACTOR:
        raise ValueError(f"the aligned kernel needs {SLICE_FACTOR} weights, not {len(kernel)}")
    first = -(-(hr_start - pair_start + 1) // SLICE_FACTOR)
    phase = SLICE_FACTOR * first + pair_start - 1 - hr_start
    taps = [0.0] * (2 * SLICE_FACTOR)
    taps[phase : phase + SLICE_FACTOR] = [float(w) for w in kernel]
    return first, tuple(taps)


def estimate_pair_start(ge_hr: np.ndarray, tse_thick: np.ndarray, mask: np.ndarray | None = None) -> int:
    """Which two adjacent GE slices (4j + p, 4j + p + 1) resemble thick slice j most.

    Correlates each slice phase r in 0..3 of the high-resolution GE with the thick TSE (inside the
    mask), as the paper did with SSIM and MI, and returns the p in 0..2 whose pair has the largest
    summed correlation. Arrays are in paper order; the LR axis is the last.
    """
    thick = tse_thick.shape[-1]
    scores = []
    for r in range(SLICE_FACTOR):
        a = ge_hr[..., r : thick * SLICE_FACTOR : SLICE_FACTOR]
        b = tse_thick
        if mask is not None:
            m = mask[..., r : thick * SLICE_FACTOR : SLICE_FACTOR].astype(bool)
            a, b = a[m], b[m]
        scores.append(float(np.corrcoef(a.ravel(), b.ravel())[0, 1]))
    return max(range(SLICE_FACTOR - 1), key=lambda p: scores[p] + scores[p + 1])


def lr_configurations(kernels: LrKernels, factor: int = SLICE_FACTOR) -> dict[int, tuple[float, ...]]:
    """Kernels by patch configuration (LR offset o: the window starts at factor * t + o), checked.

    A single kernel means configuration k alone (offset 0), the paper's inference. Offsets must lie
    in -(factor-1)..factor-1, be distinct modulo ``factor`` (a window start belongs to one
    configuration) and include 0, whose windows alone already cover every thick slice.
    """
    table = dict(kernels) if isinstance(kernels, Mapping) else {0: kernels}
    checked: dict[int, tuple[float, ...]] = {}
    for offset, kernel in table.items():
        if not -factor < int(offset) < factor:
            raise ValueError(f"LR offset {offset} must lie in {-factor + 1}..{factor - 1}")
        if len(kernel) != factor:
            raise ValueError(f"kernel {tuple(kernel)} for offset {offset} needs {factor} weights")
        checked[int(offset)] = tuple(float(w) for w in kernel)
    if 0 not in checked or len({o % factor for o in checked}) != len(checked):
        raise ValueError(f"LR offsets {sorted(checked)} must include 0 and be distinct modulo {factor}")
    return checked


def shift_kernel(kernel: Sequence[float], by: int) -> tuple[float, ...]:
    """The kernel for a window moved ``by`` slices to the right (section IV.C), renormalised to sum 1.

    The thick slice stays where it is, so its weights move left: [a, b, c, d] becomes [b, c, d, 0]
    for ``by`` = 1 and [0, a, b, c] for ``by`` = -1.
    """
    n = len(kernel)
    moved = [kernel[i + by] if 0 <= i + by < n else 0.0 for i in range(n)]
    total = sum(moved)
    if total <= 0:
        raise ValueError(f"moving {tuple(kernel)} by {by} leaves no weight")
    return tuple(w / total for w in moved)


def mirrored_configurations(configurations: Mapping[int, Sequence[float]]) -> dict[int, tuple[float, ...]]:
    """The configurations of the left-right mirrored volume: offset o becomes -o, its kernel reversed."""
    return {-offset: tuple(kernel[::-1]) for offset, kernel in configurations.items()}
