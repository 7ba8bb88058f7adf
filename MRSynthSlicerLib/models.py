"""The models a module offers: registry entries of one task, with whether each can be used now."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)

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
                entry.name,
                list(entry.inputs),
                " + ".join(entry.all_outputs),
                list(entry.voxel_size),
                entry.card_markdown(),
                where,
                path,
                dict(entry.parameters or {}),
            )
        )
    return choices


@dataclass
class ParameterField:
    """One acquisition-parameter field of the panel: what a spin box needs."""

    name: str
    label: str
    unit: str
    minimum: float
    maximum: float
    default: float
    tooltip: str


def parameter_fields(choice: ModelChoice) -> list[ParameterField]:
    """A field per parameter of the model, in its order, starting mid-range (geometric mid for log scales)."""
    fields = []
    for name, spec in choice.parameters.items():
        low, high = float(spec["min"]), float(spec["max"])
        middle = math.sqrt(low * high) if spec.get("scale") == "log" else (low + high) / 2
        text = spec.get("description", name)
        fields.append(
            ParameterField(
                name,
                f"{name} ({spec['unit']}):",
                spec["unit"],
                low,
                high,
                round(middle),
                f"{text}: {low:g}-{high:g} {spec['unit']}, the range {choice.name} was trained on",
            )
        )
    return fields


def no_model_message(task: str) -> str:
    """What to tell a user when no model of ``task`` is registered."""
    return (
        f"no {task} model is registered in this MRSynth: import a model file (Import model file...) or install "
        "an MRSynth version that ships one"
    )
