"""``SuperResolutionLogic``: restore thin slices from a thick-slice volume node (or several, for a
multi-contrast model)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mrsynth.errors import MRSynthError
from mrsynth.t2_map import DessProtocol, t2_map
from MRSynthSlicerLib import volumes
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
    metrics compare it with ``volume``. From a DESS pair (thin or thick), ``t2Map`` makes the T2 map::

        t2 = logic.t2Map(out.volume, out.moreVolumes[0], tr=23, te=7, flip=20, t1=1000)
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

    def t2Map(
        self,
        s1Volume: Any,
        s2Volume: Any,
        tr: float,
        te: float,
        flip: float,
        t1: float | Any,
        maskVolume: Any = None,
        outputVolume: Any = None,
    ) -> Any:
        """A T2 map (ms; 0 where no T2) from DESS echoes S1, S2 on one grid, by ``mrsynth.t2_map``: TR and
        TE in ms, the flip angle in degrees, ``t1`` one assumed T1 (ms) or a T1 map volume. Seconds of
        numpy, so it runs here rather than in a child process; returns ``outputVolume`` or a new node."""
        protocol = DessProtocol(float(tr), float(te), float(flip))
        t1_value = t1 if isinstance(t1, (int, float)) else volumes.image_from_node(t1, "T1 map")
        mask = volumes.image_from_node(maskVolume, "mask") if maskVolume is not None else None
        result = t2_map(
            volumes.image_from_node(s1Volume, "S1"),
            volumes.image_from_node(s2Volume, "S2"),
            protocol,
            t1_value,
            mask,
        )
        name = f"{s1Volume.GetName()}_T2map"
        node = volumes.add_volume(self.scene, result.image, name, outputVolume)
        volumes.show_as_map(node, volumes.T2_COLOR_ID, volumes.T2_WINDOW_MS)
        return node
