"""``ContrastSynthesisLogic``: synthesize a contrast (e.g. a high-resolution TSE) from volume nodes."""

from __future__ import annotations

from MRSynthSlicerLib.logic import SynthesisLogic
from MRSynthSlicerLib.models import CONTRAST_SYNTHESIS


class ContrastSynthesisLogic(SynthesisLogic):
    """Console use::

    logic = ContrastSynthesisLogic()
    out = logic.process([aOP, aIP], "gre-to-tse-sim", referenceVolume=tse, preset="paper")
    out.volume, out.lrVolume, out.reMap, out.dssimMap, out.metricsTable
    """

    TASK = CONTRAST_SYNTHESIS
    MODULE_NAME = "ContrastSynthesis"
