"""Register the inputs (to each other and to the reference) with SlicerElastix and MRSynth's parameter files.

The elastix parameter files live in ``mrsynth/resources/elastix/`` (one ``<preset>.txt`` per preset,
e.g. ``rigid``, ``affine``, ``bspline-mi``); they are found at run time, so a MRSynth without them
still runs everything but registration, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mrsynth.errors import MRSynthError


def parameter_folder() -> Path:
    """Where MRSynth keeps its elastix parameter files (may not exist)."""
    import mrsynth

    return Path(mrsynth.__file__).resolve().parent / "resources" / "elastix"


def presets(folder: Path | None = None) -> dict[str, Path]:
    """Preset name -> parameter file, from the ``*.txt`` files of ``folder`` (empty when it is missing)."""
    folder = parameter_folder() if folder is None else folder
    if not folder.is_dir():
        return {}
    return {path.stem: path for path in sorted(folder.glob("*.txt"))}


def missing_message(folder: Path | None = None) -> str:
    folder = parameter_folder() if folder is None else folder
    return (
        f"this MRSynth has no elastix parameter files ({folder} is missing or empty): update MRSynth to a version "
        "with registration, or register the inputs in the Elastix module first"
    )


def register_inputs(inputs: Sequence[Any], reference: Any, preset: str, folder: Path | None = None) -> list[Any]:
    """Resampled copies of ``inputs`` aligned to ``reference`` if given, else to the first input.

    Uses SlicerElastix's ``ElastixLogic.registerVolumes``; each registered volume is a new node named
    ``<input>_registered``; the originals are left untouched.
    """
    files = presets(folder)
    if not files:
        raise MRSynthError(missing_message(folder))
    if preset not in files:
        raise MRSynthError(f"unknown registration preset {preset!r}: use one of {', '.join(files)}")
    try:
        import Elastix
    except ImportError:
        raise MRSynthError(
            "registration needs the SlicerElastix extension: install it from the Extensions Manager and restart"
        ) from None
    logic = Elastix.ElastixLogic()
    fixed = reference if reference is not None else inputs[0]
    registered = []
    for node in inputs:
        if node is fixed:
            registered.append(node)
            continue
        scene = node.GetScene()
        output = scene.AddNewNodeByClass(
            "vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(f"{node.GetName()}_registered")
        )
        logic.registerVolumes(fixed, node, parameterFilenames=[str(files[preset])], outputVolumeNode=output)
        registered.append(output)
    return registered
