"""The models a module offers: registry entries of one task, with whether each can be used now."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mrsynth.models import registry
from mrsynth.models.cache import state

CONTRAST_SYNTHESIS = "contrast-synthesis"
SUPER_RESOLUTION = "super-resolution"


@dataclass
class ModelChoice:
    """One line of the model selector: name, inputs, card and download state."""

    name: str
    inputs: list[str]
    output: str
    voxel_size: list[float]
    card: str
    state: str
    path: Path | None

    @property
    def ready(self) -> bool:
        return self.path is not None and not self.state.startswith("damaged")

    def label(self) -> str:
        return f"{self.name} ({', '.join(self.inputs)} -> {self.output}) [{self.state}]"


def model_choices(task: str) -> list[ModelChoice]:
    """Registered models for ``task`` ('contrast-synthesis' or 'super-resolution'), in name order."""
    choices = []
    for entry in sorted(registry().values(), key=lambda e: e.name):
        if entry.task != task:
            continue
        where, path = state(entry)
        choices.append(
            ModelChoice(
                entry.name, list(entry.inputs), entry.output, list(entry.voxel_size), entry.card_markdown(), where, path
            )
        )
    return choices


def no_model_message(task: str) -> str:
    """What to tell a user when no model of ``task`` is registered."""
    return (
        f"no {task} model is registered in this MRSynth: import a model file (Import model file...) or install "
        "an MRSynth version that ships one"
    )
