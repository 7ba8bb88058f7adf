"""SuperResolution: a 3D Slicer module that restores thin slices from a thick-slice volume with MRSynth.

The same pattern as ContrastSynthesis: ``SuperResolutionLib.logic.SuperResolutionLogic`` does the
work in a child process; the panel only gathers the choices and shows the results.
"""

from __future__ import annotations

from typing import Annotated, Any

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLVolumeNode
from slicer.parameterNodeWrapper import Choice, Minimum, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

from MRSynthSlicerLib import sampledata
from MRSynthSlicerLib.widget import SynthesisWidget
from SuperResolutionLib.logic import SuperResolutionLogic

__all__ = ["SuperResolution", "SuperResolutionLogic", "SuperResolutionTest", "SuperResolutionWidget"]


class SuperResolution(ScriptedLoadableModule):
    """Module description for Slicer's module list."""

    def __init__(self, parent: Any) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Super Resolution"
        self.parent.categories = ["MRSynth"]
        self.parent.dependencies = []
        self.parent.contributors = ["MRSynth contributors"]
        self.parent.helpText = (
            "Restore thin slices from a thick-slice MRI volume with a deep-learning super-resolution model, and "
            "compare the result with a reference (relative-error and dSSIM maps, MAE, MI, SSIM, PSNR). "
            '<a href="https://github.com/mrsynth/MRSynth#3d-slicer-extension">Documentation</a>.'
        )
        self.parent.acknowledgementText = "Sample data simulated from the BrainWeb phantom (Cocosco et al. 1997)."
        slicer.app.connect("startupCompleted()", lambda: sampledata.register("SuperResolution"))


@parameterNodeWrapper
class SuperResolutionParameterNode:
    """Everything the panel remembers in the scene; widgets bind through ``SlicerParameterName``."""

    model: str = ""
    inputVolume: vtkMRMLScalarVolumeNode
    inputVolume2: vtkMRMLScalarVolumeNode
    reference: vtkMRMLScalarVolumeNode
    bodyMask: vtkMRMLVolumeNode
    preset: Annotated[str, Choice(["fast", "paper", "smooth", "custom"])] = "fast"
    strideSI: Annotated[int, Minimum(1)] = 18
    strideAP: Annotated[int, Minimum(1)] = 18
    strideLR: Annotated[int, Minimum(1)] = 4
    batchSize: Annotated[int, Minimum(1)] = 4
    flipAverage: bool = True
    backProjections: Annotated[int, Minimum(0)] = 0
    outputVolume: vtkMRMLScalarVolumeNode


class SuperResolutionWidget(SynthesisWidget):
    """The panel: model with its target slice spacing, thick input (two for a two-contrast model such as
    superres-x4-dess-sim), optional reference, options, output."""

    LOGIC_CLASS = SuperResolutionLogic
    PARAMETER_NODE_CLASS = SuperResolutionParameterNode

    def updateInputsForModel(self, choice: Any) -> None:
        si, ap, lr = choice.voxel_size
        self.ui.targetSpacingLabel.setText(f"{si:g} x {ap:g} x {lr:g} mm (SI x AP x LR)")
        two = len(choice.inputs) == 2
        self.ui.inputLabel.setText(f"{choice.inputs[0]}:" if two else "Thick-slice input:")
        self.ui.inputLabel2.setText(f"{choice.inputs[1]}:" if two else "Second input:")
        self.ui.inputLabel2.setVisible(two)
        self.ui.inputSelector2.setVisible(two)

    def _inputs(self) -> list[Any]:
        p = self._parameterNode
        return [p.inputVolume, p.inputVolume2][: len(self.currentChoice().inputs)]

    def missingInput(self) -> str | None:
        reason = super().missingInput()
        if reason:
            return reason
        for name, node in zip(self.currentChoice().inputs, self._inputs()):
            if node is None:
                return f"select the {name} volume"
        return None

    def processArguments(self) -> dict[str, Any]:
        arguments = super().processArguments()
        arguments["inputVolume"] = self._inputs()
        arguments["backProjections"] = self._parameterNode.backProjections
        return arguments


class SuperResolutionTest(ScriptedLoadableModuleTest):
    """Self-test for machines with Slicer: the panel's model list and, when a model is installed, a run."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_panel()

    def test_panel(self) -> None:
        self.delayDisplay("SuperResolution: the panel")
        slicer.util.selectModule("SuperResolution")
        widget = slicer.util.getModuleWidget("SuperResolution")
        choices = SuperResolutionLogic().modelChoices()
        self.assertEqual(widget.ui.modelComboBox.count, len(choices))
        if not choices:
            self.assertFalse(widget.ui.applyButton.enabled)
            self.delayDisplay("no super-resolution model is registered: the run is skipped")
            return
        nodes = sampledata.load_sample(slicer.mrmlScene)
        ready = [choice for choice in choices if choice.ready and len(choice.inputs) == 1]
        if not ready:
            self.delayDisplay("no single-contrast super-resolution model is downloaded: the run is skipped")
            return
        outputs = SuperResolutionLogic().process(nodes["TSE_thick"], ready[0].name)
        self.assertIsNotNone(outputs.volume.GetImageData())
        self.delayDisplay("SuperResolution self-test passed")
