"""Networks compiled for inference with ``torch.compile``, weights frozen as constants.

Why: on a CPU a sliding-window run is over 90 % network time, and most of what is not convolution
in HighResNet (BatchNorm, ReLU, reflection padding: about a quarter of its time) is memory traffic
that inductor fuses into one pass; with the weights frozen it also folds each BatchNorm that follows
a convolution into it and pre-packs the convolution weights for oneDNN. Outputs agree with the
eager network to float32 rounding. Compilation costs seconds once per network, process and input
shape, so it pays for the many same-shaped windows of the sliding mode, not for a few tiles.

Freezing bakes the weights in, so a compiled network is kept only while its parameters are
unchanged (``Tensor._version`` counts in-place updates such as an optimiser step).
"""

from __future__ import annotations

import warnings
import weakref

import torch
from torch import nn

_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], nn.Module]] = weakref.WeakKeyDictionary()


def _versions(network: nn.Module) -> tuple[int, ...]:
    return tuple(t._version for t in (*network.parameters(), *network.buffers()))


class FrozenCompiled(nn.Module):
    """``network`` under ``torch.compile`` with inductor's weight freezing; inference only."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.compiled = torch.compile(network, dynamic=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Recompilation (a new shape) happens inside the call, so the setting must hold at each call.
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=True):
            return self.compiled(x)


def compiled(network: nn.Module) -> nn.Module:
    """The cached compiled form of ``network`` (built on first use; rebuilt if its weights changed)."""
    versions = _versions(network)
    cached = _CACHE.get(network)
    if cached is None or cached[0] != versions:
        cached = (versions, FrozenCompiled(network))
        _CACHE[network] = cached
    return cached[1]


def forget(network: nn.Module, error: Exception) -> None:
    """Drop ``network``'s compiled form after ``error`` and warn that the run goes on uncompiled."""
    _CACHE.pop(network, None)
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    warnings.warn(
        f"torch.compile failed ({type(error).__name__}: {first_line[:200]}); running the network uncompiled. "
        "On a CPU compiling needs a C++ compiler (gcc, clang or MSVC) on the PATH; leave --compile off to skip it",
        stacklevel=3,
    )
