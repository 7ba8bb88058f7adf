"""``SuperResolutionLogic``: restore thin slices from a thick-slice volume node (or several, for a
multi-contrast model)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mrsynth.errors import MRSynthError
from MRSynthSlicerLib.logic import SynthesisJob, SynthesisLogic, SynthesisOutputs
from MRSynthSlicerLib.models import SUPER_RESOLUTION, no_model_message


class SuperResolutionLogic(SynthesisLogic):
    """Console use::

        logic = SuperResolutionLogic()
        out = logic.process(thickVolume, "superres-x4-sim", referenceVolume=thinVolume)

    The slice axis is read from the input's geometry (its largest spacing); the output has the model's
    slice factor times more slices along it (``mrsynth.superres.superresolve``), in the input's units.
    A multi-contrast model (e.g. ``superres-x4-dess-sim``) takes a list of volumes on one grid, in its
    input order, and restores them together: the first output is ``volume``, the others
    ``moreVolumes``. A ``referenceVolume`` is the thin truth of the first input: the maps and
    metrics compare it with ``volume``.
    """

    TASK = SUPER_RESOLUTION
    MODULE_NAME = "SuperResolution"

    def targetSpacing(self, model: str) -> list[float]:
        """The voxel size (SI, AP, LR, mm) of the model's training volumes, from the registry."""
        for choice in self.modelChoices():
            if choice.name == model:
                return choice.voxel_size
        known = [choice.name for choice in self.modelChoices()]
        raise MRSynthError(no_model_message(self.TASK) if not known else f"{model} is not a {self.TASK} model")

    def process(self, inputVolume: Any | Sequence[Any], model: str, **kwargs: Any) -> SynthesisOutputs | SynthesisJob:  # type: ignore[override]
        """Run the super-resolution ``model`` on a thick-slice volume (or a list, one per model input);
        options as ``SynthesisLogic.process``."""
        if kwargs.pop("outputLRVolume", None) is not None:
            raise MRSynthError("super-resolution has no thick-slice output: drop outputLRVolume")
        inputs = list(inputVolume) if isinstance(inputVolume, (list, tuple)) else [inputVolume]
        return super().process(inputs, model, **kwargs)
