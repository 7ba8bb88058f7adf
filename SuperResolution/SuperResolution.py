"""SuperResolution: a 3D Slicer module that restores thin slices from a thick-slice volume with MRSynth.

The same pattern as ContrastSynthesis: ``SuperResolutionLib.logic.SuperResolutionLogic`` does the
work in a child process; the panel only gathers the choices and shows the results.
"""

from __future__ import annotations

from typing import Annotated, Any

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLVolumeNode
from slicer.parameterNodeWrapper import Choice, Minimum, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

from mrsynth.errors import MRSynthError
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
    precision: Annotated[str, Choice(["float32", "bfloat16", "float16"])] = "float32"
    backProjections: Annotated[int, Minimum(0)] = 0
    matchInPlane: bool = True
    inPlaneFlip: bool = False
    outputVolume: vtkMRMLScalarVolumeNode
    t2Map: bool = False  # a DESS T2 map from a two-echo model's outputs
    dessTR: Annotated[float, WithinRange(0.1, 10000.0)] = 23.0
    dessTE: Annotated[float, WithinRange(0.1, 10000.0)] = 7.0
    dessFlip: Annotated[float, WithinRange(0.1, 179.9)] = 20.0
    dessT1: Annotated[float, WithinRange(1.0, 10000.0)] = 1000.0


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
        self.ui.t2MapWidget.setVisible(two)

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
        arguments["matchInPlane"] = self._parameterNode.matchInPlane
        arguments["inPlaneFlip"] = self._parameterNode.inPlaneFlip
        return arguments

    def showOutputs(self, outputs: Any) -> None:
        """The restored volume as usual; then, when asked and the model gave two echoes, their T2 map over S1."""
        super().showOutputs(outputs)
        p = self._parameterNode
        if not (p.t2Map and outputs.moreVolumes):
            return
        try:
            t2 = self.logic.t2Map(outputs.volume, outputs.moreVolumes[0], p.dessTR, p.dessTE, p.dessFlip, p.dessT1)
        except MRSynthError as err:
            slicer.util.errorDisplay(f"The echoes were restored, but no T2 map was made: {err}")
            return
        slicer.util.setSliceViewerLayers(background=outputs.volume, foreground=t2, foregroundOpacity=0.5)


class SuperResolutionTest(ScriptedLoadableModuleTest):
    """Self-test for machines with Slicer: the panel's model list and, when a model is installed, a run."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_panel()
        self.setUp()
        self.test_t2_map()

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

    def test_t2_map(self) -> None:
        """The DESS T2 map of noise-free echoes simulated from the bundled phantom gives white matter its
        tissue-table T2 (no model needed)."""
        import numpy as np
        import SimpleITK as sitk
        from scipy import ndimage

        from mrsynth.dess import simulate_dess
        from mrsynth.simulate import bundled_phantom, load_spec
        from mrsynth.volume_io import to_paper
        from MRSynthSlicerLib import volumes

        self.delayDisplay("SuperResolution: DESS T2 map")
        spec = load_spec()
        dess = simulate_dess(to_paper(bundled_phantom())[60:90, 60:100, 60:100].astype(np.int64), "brainweb", spec)
        nodes = [
            volumes.add_volume(slicer.mrmlScene, sitk.GetImageFromArray(dess[name].astype(np.float32)), name)
            for name in ("S1", "S2")
        ]
        t2 = SuperResolutionLogic().t2Map(*nodes, tr=23, te=7, flip=20, t1=spec["tissues"]["wm"]["T1"])
        wm = ndimage.binary_erosion(dess["tissues"] == list(spec["tissues"]).index("wm"), iterations=2)
        found = float(np.median(slicer.util.arrayFromVolume(t2)[wm]))
        self.assertAlmostEqual(found / spec["tissues"]["wm"]["T2"], 1.0, delta=0.01)
        self.delayDisplay("SuperResolution T2 map self-test passed")
