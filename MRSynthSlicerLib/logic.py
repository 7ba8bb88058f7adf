"""The logic both modules share: nodes in, a worker child process, nodes out.

``SynthesisLogic.process`` writes the input nodes to a job folder, starts ``worker.py`` in a child
process (``PythonSlicer`` inside Slicer) and, when it ends, loads the synthetic volume(s), the error
maps and the metrics back into the scene. Blocking (``waitForCompletion=True``) suits the console
and batch runs; the module panel polls the returned job from a timer instead.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from mrsynth.errors import Cancelled, MRSynthError

from . import volumes
from .runner import ChildRun, child_environment, worker_command
from .worker import METRICS_FILE, OUTPUT_FILES, more_output_file

OUTPUT_DIR = "outputs"
RE_WINDOW = (0.0, 0.5)
DSSIM_WINDOW = (0.0, 0.5)


@dataclass
class SynthesisOutputs:
    """What a finished run put into the scene (``moreVolumes``: a multi-contrast super-resolution model's
    outputs for its second and further inputs, in order)."""

    volume: Any
    moreVolumes: list[Any] = field(default_factory=list)
    lrVolume: Any = None
    reMap: Any = None
    dssimMap: Any = None
    metricsTable: Any = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


class SynthesisJob:
    """A running synthesis: poll it, cancel it, or wait for it; ``outputs`` is set once it succeeded."""

    def __init__(
        self,
        logic: SynthesisLogic,
        folder: Path,
        run: ChildRun,
        nodes: dict[str, Any],
        onFinished: Callable[[SynthesisJob], None] | None = None,
    ) -> None:
        self.logic = logic
        self.folder = folder
        self.run = run
        self.nodes = nodes
        self.onFinished = onFinished
        self.outputs: SynthesisOutputs | None = None
        self.error = ""

    @property
    def state(self) -> str:
        return self.run.state

    def poll(self) -> bool:
        """Handle the child's new lines; when it has ended, collect its outputs. True while running."""
        if self.run.poll():
            return True
        self._finish()
        return False

    def wait(self) -> SynthesisOutputs:
        """Block until the run ends; raises ``MRSynthError`` with the child's message if it failed."""
        try:
            self.run.wait()
        except BaseException:  # Ctrl-C in the console: stop the child too
            self.cancel()
            raise
        self._finish()
        if self.run.state == "cancelled":
            raise Cancelled("synthesis was cancelled: no output was created")
        if self.outputs is None:
            raise MRSynthError(self.error)
        return self.outputs

    def cancel(self) -> None:
        """Stop the child; nothing is added to the scene."""
        self.run.cancel()
        self._finish()

    def _finish(self) -> None:
        if self.folder is None:
            return
        try:
            if self.run.state == "done":
                self.outputs = self.logic.loadOutputs(self.folder / OUTPUT_DIR, self.nodes)
            elif self.run.state == "failed":
                self.error = self.run.error or "the worker failed without a message: see the log"
        except MRSynthError as err:
            self.error = str(err)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None  # type: ignore[assignment]
        if self.onFinished is not None:
            self.onFinished(self)


class SynthesisLogic:
    """Shared by ``ContrastSynthesisLogic`` and ``SuperResolutionLogic``; ``TASK`` picks the models."""

    TASK = ""
    MODULE_NAME = ""

    def __init__(self, scene: Any = None) -> None:
        self._scene = scene

    @property
    def scene(self) -> Any:
        if self._scene is not None:
            return self._scene
        import slicer

        if slicer.mrmlScene is None:
            raise MRSynthError("no MRML scene: pass one to the logic (Logic(scene)) outside Slicer")
        return slicer.mrmlScene

    def getParameterNode(self) -> Any:
        """The module's singleton parameter node, as ``ScriptedLoadableModuleLogic`` provides it."""
        node = self.scene.GetSingletonNode(self.MODULE_NAME, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = self.scene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
            node.UnRegister(None)
            node.SetSingletonTag(self.MODULE_NAME)
            node.SetName(self.scene.GenerateUniqueName(self.MODULE_NAME))
            node.SetModuleName(self.MODULE_NAME)
            node = self.scene.AddNode(node)
        return node

    def modelChoices(self) -> list[Any]:
        from .models import model_choices

        return model_choices(self.TASK)

    def process(
        self,
        inputVolumes: Sequence[Any],
        model: str,
        referenceVolume: Any = None,
        maskVolume: Any = None,
        boneMaskVolume: Any = None,
        preset: str = "fast",
        stride: Sequence[int] | None = None,
        device: str = "auto",
        batchSize: int = 4,
        flipAverage: bool = True,
        precision: str = "float32",
        backProjections: int = 0,
        matchInPlane: bool = True,
        inPlaneFlip: bool = False,
        outputVolume: Any = None,
        outputLRVolume: Any = None,
        registrationPreset: str | None = None,
        parameters: dict[str, float] | None = None,
        waitForCompletion: bool = True,
        onProgress: Callable[[int, int], None] | None = None,
        onFinished: Callable[[SynthesisJob], None] | None = None,
    ) -> SynthesisOutputs | SynthesisJob:
        """Run ``model`` on ``inputVolumes`` (in the model's input order) and put the results in the scene.

        ``preset`` is fast, paper or smooth; a ``stride`` (SI, AP, LR) switches to the sliding windows.
        ``maskVolume`` is the body mask for normalisation and the metrics; with ``referenceVolume`` the
        relative-error and dSSIM maps and a metrics table (body, and bone with ``boneMaskVolume``) are
        added. ``registrationPreset`` (e.g. ``rigid``) first aligns the inputs to the reference, or to the
        first input, with SlicerElastix (masks must then lie on that volume's grid). ``precision``
        bfloat16 runs the network under autocast (about twice as fast on CPUs with bfloat16 units, outputs
        within about 1 % of float32's; float16 needs a GPU). ``parameters`` are
        the acquisition parameters of a conditioned model (e.g. ``{"TR": 2000, "TE": 80}``).
        ``backProjections`` (super-resolution only) passes of back-projection onto the thick input follow
        the network, and ``matchInPlane`` (super-resolution only) runs it at the model's in-plane voxel
        size where the input's is finer, and ``inPlaneFlip`` (super-resolution only) also averages the
        passes mirrored along the in-plane axis training mirrored (``mrsynth.superres.superresolve``). Blocking returns
        ``SynthesisOutputs``; otherwise a ``SynthesisJob`` to poll or cancel.
        """
        if not inputVolumes or any(node is None for node in inputVolumes):
            raise MRSynthError("select every input volume the model asks for")
        if backProjections and self.TASK != "super-resolution":
            raise MRSynthError("back-projection onto a thick input belongs to super-resolution: set backProjections=0")
        if not matchInPlane and self.TASK != "super-resolution":
            raise MRSynthError("matching the in-plane voxel size belongs to super-resolution: leave matchInPlane on")
        if inPlaneFlip and self.TASK != "super-resolution":
            raise MRSynthError("the in-plane mirrored pass belongs to super-resolution: set inPlaneFlip=False")
        if registrationPreset:
            from .registration import register_inputs

            inputVolumes = register_inputs(inputVolumes, referenceVolume, registrationPreset)
        options: dict[str, Any] = {"batch_size": int(batchSize)}
        if precision != "float32":
            options["precision"] = str(precision)
        if stride is not None:
            options.update(mode="sliding", stride=[int(s) for s in stride])
        folder = Path(tempfile.mkdtemp(prefix="mrsynth-job-"))
        try:
            job: dict[str, Any] = {
                "task": self.TASK,
                "model": str(model),
                "inputs": [
                    self._write(node, folder, f"input{i}.nrrd", f"input {i}")
                    for i, node in enumerate(inputVolumes, start=1)
                ],
                "preset": preset,
                "options": options,
                "device": device,
                "flip_average": bool(flipAverage),
                "output_dir": OUTPUT_DIR,
            }
            if parameters:
                job["parameters"] = {name: float(value) for name, value in parameters.items()}
            if backProjections:
                job["back_projections"] = int(backProjections)
            if not matchInPlane:
                job["match_in_plane"] = False
            if inPlaneFlip:
                job["in_plane_flip"] = True
            if maskVolume is not None:
                job["mask"] = self._write(maskVolume, folder, "mask.nrrd", "mask")
            if referenceVolume is not None:
                job["reference"] = self._write(referenceVolume, folder, "reference.nrrd", "reference")
                if maskVolume is not None and self.TASK != "super-resolution":
                    job["body_mask"] = job["mask"]
                if boneMaskVolume is not None:
                    job["bone_mask"] = self._write(boneMaskVolume, folder, "bone_mask.nrrd", "bone mask")
            job_file = folder / "job.json"
            job_file.write_text(json.dumps(job, indent=2), encoding="utf-8")
            run = ChildRun(worker_command(job_file), env=child_environment(), on_progress=onProgress).start()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        nodes = {
            "inputs": list(inputVolumes),
            "reference": referenceVolume,
            "volume": outputVolume,
            "lrVolume": outputLRVolume,
            "model": str(model),
        }
        handle = SynthesisJob(self, folder, run, nodes, onFinished)
        return handle.wait() if waitForCompletion else handle

    @staticmethod
    def _write(node: Any, folder: Path, name: str, what: str) -> str:
        sitk.WriteImage(volumes.image_from_node(node, what), str(folder / name), useCompression=False)
        return name

    def outputName(self, nodes: dict[str, Any], suffix: str, index: int = 0) -> str:
        """``<input node>_<model>_<suffix>``, after the first input or, for a further output, its own."""
        return f"{nodes['inputs'][index].GetName()}_{Path(nodes['model']).stem}_{suffix}"

    def loadOutputs(self, folder: Path, nodes: dict[str, Any]) -> SynthesisOutputs:
        """Put the worker's files into volume and table nodes with the right geometry and display."""
        scene = self.scene
        hr = sitk.ReadImage(str(folder / OUTPUT_FILES["hr"]))
        volume = volumes.add_volume(scene, hr, self.outputName(nodes, "HR"), nodes["volume"])
        if self.TASK != "super-resolution":
            # The synthetic volume lies on the first input's grid by contract: take its geometry from
            # the node itself, bit for bit, rather than through a file's text header.
            volumes.copy_geometry(volume, nodes["inputs"][0])
        outputs = SynthesisOutputs(volume=volume)
        index = 2
        while (folder / more_output_file(index)).is_file():  # a multi-contrast model's further outputs
            image = sitk.ReadImage(str(folder / more_output_file(index)))
            outputs.moreVolumes.append(volumes.add_volume(scene, image, self.outputName(nodes, "HR", index - 1)))
            index += 1
        if (folder / OUTPUT_FILES["lr"]).is_file():
            lr = sitk.ReadImage(str(folder / OUTPUT_FILES["lr"]))
            outputs.lrVolume = volumes.add_volume(scene, lr, self.outputName(nodes, "LR"), nodes["lrVolume"])
        if (folder / METRICS_FILE).is_file():
            reference = nodes["reference"]
            for attribute, key, color, window, suffix in (
                ("reMap", "re_map", volumes.RE_COLOR_ID, RE_WINDOW, "RE"),
                ("dssimMap", "dssim_map", volumes.DSSIM_COLOR_ID, DSSIM_WINDOW, "dSSIM"),
            ):
                node = volumes.add_volume(
                    scene, sitk.ReadImage(str(folder / OUTPUT_FILES[key])), self.outputName(nodes, suffix)
                )
                volumes.copy_geometry(node, reference)
                volumes.show_as_map(node, color, window)
                setattr(outputs, attribute, node)
            volumes.show_overlay(reference, outputs.reMap)
            outputs.metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))["metrics"]
            outputs.metricsTable = volumes.metrics_table(scene, outputs.metrics, self.outputName(nodes, "metrics"))
        return outputs
