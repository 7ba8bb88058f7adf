"""The panel code both modules share (Slicer only: it imports Qt and the Slicer GUI).

A module's widget subclasses ``SynthesisWidget`` and says which logic, parameter-node class and UI
file it uses and how its inputs map to the logic's ``process``. The run goes to a child process;
a ``qt.QTimer`` polls it, so the panel stays responsive and Apply turns into Cancel meanwhile.
"""

from __future__ import annotations

import logging
from typing import Any

import qt
import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from mrsynth.errors import Cancelled, MRSynthError

from . import dependencies
from .models import no_model_message

POLL_MS = 200
CUSTOM = "custom"


class SynthesisWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Model selector, dependencies, options, Apply/Cancel and progress; subclasses add their inputs."""

    LOGIC_CLASS: Any = None
    PARAMETER_NODE_CLASS: Any = None

    def __init__(self, parent: Any = None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: Any = None
        self._parameterNode: Any = None
        self._parameterNodeGuiTag: Any = None
        self._job: Any = None
        self._choices: list[Any] = []
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_MS)
        self._timer.connect("timeout()", self._poll)

    # --- set-up, as the scripted-module template does -----------------------------------------
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath(f"UI/{self.moduleName}.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = self.LOGIC_CLASS()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.downloadButton.connect("clicked(bool)", self.onDownload)
        self.ui.importModelButton.connect("clicked(bool)", self.onImportModel)
        self.ui.dependenciesButton.connect("clicked(bool)", self.onInstallDependencies)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.deviceComboBox.addItems(self._devices())
        self.ui.progressBar.hide()
        self._refreshDependencies()
        self.fillModels()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self._cancelRun()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, slicer.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller: Any, event: Any) -> None:
        self._cancelRun()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller: Any, event: Any) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.PARAMETER_NODE_CLASS(self.logic.getParameterNode()))

    def setParameterNode(self, inputParameterNode: Any) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, slicer.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, slicer.vtkCommand.ModifiedEvent, self._checkCanApply)
            if self._parameterNode.model:
                index = self.ui.modelComboBox.findData(self._parameterNode.model)
                if index >= 0:
                    self.ui.modelComboBox.setCurrentIndex(index)
            self._checkCanApply()

    # --- models ------------------------------------------------------------------------------
    def fillModels(self) -> None:
        """Fill the selector from the registry (models of this module's task) with their state."""
        self._choices = self.logic.modelChoices()
        combo = self.ui.modelComboBox
        combo.blockSignals(True)
        combo.clear()
        for choice in self._choices:
            combo.addItem(choice.label(), choice.name)
        combo.blockSignals(False)
        if not self._choices:
            self.ui.modelStateLabel.setText(no_model_message(self.logic.TASK))
        self.onModelChanged(combo.currentIndex)

    def currentChoice(self) -> Any:
        index = self.ui.modelComboBox.currentIndex
        return self._choices[index] if 0 <= index < len(self._choices) else None

    def onModelChanged(self, index: int) -> None:
        choice = self.currentChoice()
        if choice is None:
            self.ui.modelCardBrowser.setPlainText("")
            self.ui.downloadButton.enabled = False
            return
        self.ui.modelStateLabel.setText(choice.state)
        self.ui.modelCardBrowser.setMarkdown(choice.card)
        self.ui.downloadButton.enabled = not choice.ready
        if self._parameterNode:
            self._parameterNode.model = choice.name
        self.updateInputsForModel(choice)
        self._checkCanApply()

    def updateInputsForModel(self, choice: Any) -> None:
        """Subclasses show the input selectors the model needs."""

    def onDownload(self) -> None:
        from mrsynth.models import pull, registry

        choice = self.currentChoice()
        bar = self.ui.progressBar
        bar.show()

        def progress(done: int, total: int) -> None:
            bar.setMaximum(max(total, 1))
            bar.setValue(done)
            slicer.app.processEvents()

        try:
            with slicer.util.tryWithErrorDisplay(f"Could not download {choice.name}.", waitCursor=True):
                pull(registry()[choice.name], progress=progress)
        finally:
            bar.hide()
            self.fillModels()

    def onImportModel(self) -> None:
        from mrsynth.models import registry
        from mrsynth.models.importing import import_model

        path = qt.QFileDialog.getOpenFileName(
            self.parent, "Import model file", "", "MRSynth models (*.pt *.zip);;All files (*)"
        )
        if not path:
            return
        with slicer.util.tryWithErrorDisplay("Could not import the model file.", waitCursor=True):
            imported = import_model(path, registry())
            note = "" if imported.verified else " (your own model: the registry cannot verify it)"
            slicer.util.infoDisplay(f"Imported model {imported.name}{note}.")
        self.fillModels()

    # --- dependencies and devices ---------------------------------------------------------------
    def _refreshDependencies(self) -> None:
        names = dependencies.missing()
        self.ui.dependenciesButton.setVisible(bool(names))
        if names:
            self.ui.statusLabel.setText(dependencies.missing_message(names))

    def onInstallDependencies(self) -> None:
        with slicer.util.tryWithErrorDisplay("Could not install the dependencies.", waitCursor=True):
            dependencies.install(ask=True)
        self._refreshDependencies()

    @staticmethod
    def _devices() -> list[str]:
        """auto, CPU and one entry per CUDA GPU (torch imported only when installed)."""
        devices = ["auto", "cpu"]
        if "torch" not in dependencies.missing():
            import torch

            devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        return devices

    # --- run -----------------------------------------------------------------------------------
    def _checkCanApply(self, caller: Any = None, event: Any = None) -> None:
        if self._job is not None or self._parameterNode is None:
            return
        reason = self.missingInput()
        self.ui.applyButton.enabled = reason is None
        self.ui.applyButton.toolTip = reason or "Run the model"

    def missingInput(self) -> str | None:
        """Why Apply cannot run yet (None when it can)."""
        if self.currentChoice() is None:
            return no_model_message(self.logic.TASK)
        if not self.currentChoice().ready:
            return f"download model {self.currentChoice().name} first (Download)"
        if dependencies.missing():
            return "install the dependencies first"
        return None

    def processArguments(self) -> dict[str, Any]:
        """The keyword arguments of ``logic.process`` from the panel; subclasses add their inputs."""
        p = self._parameterNode
        stride = (p.strideSI, p.strideAP, p.strideLR) if p.preset == CUSTOM else None
        return {
            "model": self.currentChoice().name,
            "referenceVolume": p.reference,
            "maskVolume": p.bodyMask,
            "preset": "fast" if p.preset == CUSTOM else p.preset,
            "stride": stride,
            "device": self.ui.deviceComboBox.currentText,
            "batchSize": p.batchSize,
            "flipAverage": p.flipAverage,
            "precision": p.precision,
            "outputVolume": p.outputVolume,
        }

    def onApplyButton(self) -> None:
        if self._job is not None:
            self._cancelRun()
            self.ui.statusLabel.setText("Cancelled: no output was created.")
            return
        try:
            with slicer.util.WaitCursor():
                self._job = self.logic.process(
                    waitForCompletion=False, onProgress=self._onProgress, **self.processArguments()
                )
        except MRSynthError as err:
            slicer.util.errorDisplay(str(err))
            return
        self.ui.applyButton.text = "Cancel"
        self.ui.progressBar.setValue(0)
        self.ui.progressBar.show()
        self.ui.statusLabel.setText("Running the model in a separate process...")
        self._timer.start()

    def _onProgress(self, done: int, total: int) -> None:
        self.ui.progressBar.setMaximum(max(total, 1))
        self.ui.progressBar.setValue(done)

    def _poll(self) -> None:
        if self._job is None or self._job.poll():
            return
        job, self._job = self._job, None
        self._endRun()
        if job.outputs is not None:
            self.showOutputs(job.outputs)
            self.ui.statusLabel.setText("Done.")
        elif job.state != "cancelled":
            logging.error("MRSynth worker log:\n%s", "\n".join(job.run.log))
            slicer.util.errorDisplay(job.error, detailedText="\n".join(job.run.log[-200:]))
            self.ui.statusLabel.setText("Failed: see the message and the log.")

    def _cancelRun(self) -> None:
        if self._job is not None:
            try:
                self._job.cancel()
            except Cancelled:
                pass
            self._job = None
            self._endRun()

    def _endRun(self) -> None:
        self._timer.stop()
        self.ui.progressBar.hide()
        self.ui.applyButton.text = "Apply"
        self._checkCanApply()

    def showOutputs(self, outputs: Any) -> None:
        """Show the result in the views: the synthetic volume, the RE map over the reference, the table."""
        p = self._parameterNode
        p.outputVolume = outputs.volume
        if outputs.reMap is not None:
            slicer.util.setSliceViewerLayers(
                background=self._parameterNode.reference, foreground=outputs.reMap, foregroundOpacity=0.5
            )
        else:
            slicer.util.setSliceViewerLayers(background=outputs.volume, fit=True)
        if outputs.metricsTable is not None:
            selection = slicer.app.applicationLogic().GetSelectionNode()
            selection.SetActiveTableID(outputs.metricsTable.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()
