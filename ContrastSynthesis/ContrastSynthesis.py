"""ContrastSynthesis: a 3D Slicer module that synthesizes a contrast (e.g. a high-resolution TSE) with MRSynth.

The panel is a thin layer: ``ContrastSynthesisLib.logic.ContrastSynthesisLogic`` does the work (also
from the Python console and batch scripts), in a child process so that Slicer stays responsive.
"""

from __future__ import annotations

from typing import Annotated, Any

import qt
import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLVolumeNode
from slicer.parameterNodeWrapper import Choice, Minimum, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

from ContrastSynthesisLib.logic import ContrastSynthesisLogic
from MRSynthSlicerLib import registration, sampledata
from MRSynthSlicerLib.models import parameter_fields
from MRSynthSlicerLib.widget import SynthesisWidget

__all__ = ["ContrastSynthesis", "ContrastSynthesisLogic", "ContrastSynthesisTest", "ContrastSynthesisWidget"]
MAX_INPUTS = 4


class ContrastSynthesis(ScriptedLoadableModule):
    """Module description for Slicer's module list."""

    def __init__(self, parent: Any) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Contrast Synthesis"
        self.parent.categories = ["MRSynth"]
        self.parent.dependencies = []
        self.parent.contributors = ["MRSynth contributors"]
        self.parent.helpText = (
            "Synthesize an MRI contrast (e.g. a high-resolution T1w TSE from dual-echo 3D gradient echo) with a "
            "deep-learning model, optionally registering the inputs, and compare it with a reference "
            "(relative-error and dSSIM maps, MAE, MI, SSIM, PSNR). "
            '<a href="https://github.com/mrsynth/MRSynth#3d-slicer-extension">Documentation</a>.'
        )
        self.parent.acknowledgementText = (
            "Method of Pollitt (HighResNet, High-to-low approach). Sample data simulated from the BrainWeb "
            "phantom (Cocosco et al. 1997)."
        )
        slicer.app.connect("startupCompleted()", lambda: sampledata.register("ContrastSynthesis"))


@parameterNodeWrapper
class ContrastSynthesisParameterNode:
    """Everything the panel remembers in the scene; widgets bind through ``SlicerParameterName``."""

    model: str = ""
    input1: vtkMRMLScalarVolumeNode
    input2: vtkMRMLScalarVolumeNode
    input3: vtkMRMLScalarVolumeNode
    input4: vtkMRMLScalarVolumeNode
    reference: vtkMRMLScalarVolumeNode
    bodyMask: vtkMRMLVolumeNode
    boneMask: vtkMRMLVolumeNode
    register: bool = False
    preset: Annotated[str, Choice(["fast", "paper", "smooth", "custom"])] = "fast"
    strideSI: Annotated[int, Minimum(1)] = 18
    strideAP: Annotated[int, Minimum(1)] = 18
    strideLR: Annotated[int, Minimum(1)] = 4
    batchSize: Annotated[int, Minimum(1)] = 4
    flipAverage: bool = True
    precision: Annotated[str, Choice(["float32", "bfloat16", "float16"])] = "float32"
    outputVolume: vtkMRMLScalarVolumeNode
    outputLRVolume: vtkMRMLScalarVolumeNode


class ContrastSynthesisWidget(SynthesisWidget):
    """The panel: model, inputs that follow the model, reference and masks, registration, options, outputs."""

    LOGIC_CLASS = ContrastSynthesisLogic
    PARAMETER_NODE_CLASS = ContrastSynthesisParameterNode

    def setup(self) -> None:
        self._parameterBoxes: dict[str, Any] = {}
        super().setup()
        presets = registration.presets()
        self.ui.registrationPresetComboBox.addItems(list(presets))
        if not presets:
            self.ui.registerCheckBox.enabled = False
            self.ui.registerCheckBox.toolTip = registration.missing_message()

    def _inputWidgets(self) -> list[tuple[Any, Any]]:
        return [(getattr(self.ui, f"inputLabel{i}"), getattr(self.ui, f"inputSelector{i}")) for i in range(1, 5)]

    def updateInputsForModel(self, choice: Any) -> None:
        for i, (label, selector) in enumerate(self._inputWidgets()):
            used = i < len(choice.inputs)
            label.setVisible(used)
            selector.setVisible(used)
            if used:
                label.setText(f"{choice.inputs[i]}:")
                selector.toolTip = f"Input {i + 1} of {choice.name}: {choice.inputs[i]}"
        self._showParameterFields(choice)

    def _showParameterFields(self, choice: Any) -> None:
        """A spin box per acquisition parameter of the model (TR, TE ...), limited to its trained range."""
        layout = self.ui.parametersCollapsibleButton.layout()
        while layout.rowCount():
            layout.removeRow(0)
        self._parameterBoxes = {}
        for field in parameter_fields(choice):
            box = qt.QDoubleSpinBox()
            box.decimals = 0
            box.minimum, box.maximum, box.value = field.minimum, field.maximum, field.default
            box.suffix = f" {field.unit}"
            box.toolTip = field.tooltip
            layout.addRow(field.label, box)
            self._parameterBoxes[field.name] = box
        self.ui.parametersCollapsibleButton.setVisible(bool(self._parameterBoxes))

    def missingInput(self) -> str | None:
        reason = super().missingInput()
        if reason:
            return reason
        names = self.currentChoice().inputs
        for i, name in enumerate(names, start=1):
            if getattr(self._parameterNode, f"input{i}") is None:
                return f"select the {name} volume"
        return None

    def processArguments(self) -> dict[str, Any]:
        p = self._parameterNode
        arguments = super().processArguments()
        count = len(self.currentChoice().inputs)
        arguments["inputVolumes"] = [getattr(p, f"input{i}") for i in range(1, count + 1)]
        arguments["boneMaskVolume"] = p.boneMask
        arguments["outputLRVolume"] = p.outputLRVolume
        if self._parameterBoxes:
            arguments["parameters"] = {name: box.value for name, box in self._parameterBoxes.items()}
        if p.register:
            arguments["registrationPreset"] = self.ui.registrationPresetComboBox.currentText
        return arguments

    def showOutputs(self, outputs: Any) -> None:
        if outputs.lrVolume is not None:
            self._parameterNode.outputLRVolume = outputs.lrVolume
        super().showOutputs(outputs)


class ContrastSynthesisTest(ScriptedLoadableModuleTest):
    """Self-test for machines with Slicer: the sample data through the logic and through the panel."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_logic_on_sample()
        self.setUp()
        self.test_panel_on_sample()

    def _sample(self) -> dict[str, Any]:
        nodes = sampledata.load_sample(slicer.mrmlScene)
        self.assertIn("GE_aOP", nodes)
        return nodes

    def test_logic_on_sample(self) -> None:
        self.delayDisplay("ContrastSynthesis: logic on the sample")
        nodes = self._sample()
        outputs = ContrastSynthesisLogic().process(
            [nodes["GE_aOP"], nodes["GE_aIP"]], "gre-to-tse-sim", referenceVolume=nodes["TSE_HR"]
        )
        self.assertEqual(outputs.volume.GetImageData().GetDimensions(), nodes["GE_aOP"].GetImageData().GetDimensions())
        self.assertGreater(outputs.metrics["body"]["ssim"], 0.5)
        self.assertEqual(outputs.metricsTable.GetNumberOfRows(), 1)

    def test_panel_on_sample(self) -> None:
        self.delayDisplay("ContrastSynthesis: the panel on the sample")
        nodes = self._sample()
        slicer.util.selectModule("ContrastSynthesis")
        widget = slicer.util.getModuleWidget("ContrastSynthesis")
        index = widget.ui.modelComboBox.findData("gre-to-tse-sim")
        widget.ui.modelComboBox.setCurrentIndex(index)
        widget.ui.inputSelector1.setCurrentNode(nodes["GE_aOP"])
        widget.ui.inputSelector2.setCurrentNode(nodes["GE_aIP"])
        widget.ui.referenceSelector.setCurrentNode(nodes["TSE_HR"])
        widget.ui.precisionComboBox.setCurrentText("bfloat16")  # the panel's run takes the bfloat16 path
        self.assertEqual(widget._parameterNode.precision, "bfloat16")
        self.assertTrue(widget.ui.applyButton.enabled)
        widget.ui.applyButton.click()
        self.assertEqual(widget.ui.applyButton.text, "Cancel")
        while widget._job is not None:
            slicer.app.processEvents()
            self.delayDisplay("waiting", 200)
        self.assertEqual(widget.ui.applyButton.text, "Apply")
        self.assertIsNotNone(widget._parameterNode.outputVolume)
        self.delayDisplay("ContrastSynthesis self-test passed")
