"""Register the inputs (to each other and to the reference) with SlicerElastix and MRSynth's parameter files.

MRSynth's presets (``mrsynth.registration.PRESETS``: name -> elastix parameter files, run in turn)
and their files in ``mrsynth/resources/elastix/`` are found at run time, so an MRSynth without them
still runs everything but registration, and says so. Presets with elastix's rigidity penalty are
left out here: they need the bone mask as a rigidity image, which ``ElastixLogic.registerVolumes``
cannot pass (``mrsynth register`` can).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mrsynth.errors import MRSynthError

RIGIDITY = "TransformRigidityPenalty"


def parameter_folder() -> Path:
    """Where MRSynth keeps its elastix parameter files (may not exist)."""
    import mrsynth

    return Path(mrsynth.__file__).resolve().parent / "resources" / "elastix"


def presets(folder: Path | None = None) -> dict[str, list[Path]]:
    """Preset name -> its parameter files, for the presets SlicerElastix can run (empty when missing)."""
    folder = parameter_folder() if folder is None else folder
    if not folder.is_dir():
        return {}
    try:
        from mrsynth.registration import PRESETS
    except ImportError:
        return {}
    found = {}
    for name, files in PRESETS.items():
        paths = [folder / file for file in files]
        if all(path.is_file() for path in paths) and not any(RIGIDITY in path.read_text() for path in paths):
            found[name] = paths
    return found


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
        logic.registerVolumes(
            fixed, node, parameterFilenames=[str(path) for path in files[preset]], outputVolumeNode=output
        )
        registered.append(output)
    return registered
