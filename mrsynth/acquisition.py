"""Acquisition parameters (TR, TE, ...) that condition a model: declaration, parsing, checking, scaling.

A conditioned model declares each parameter it takes with its unit, range and scale, e.g.
``{"TR": {"unit": "ms", "min": 1200, "max": 10000, "scale": "linear"}}``; the same declaration
sits in the checkpoint (``ModelInfo.parameters``) and in the registry entry. The network sees every
value mapped to [0, 1] over its range: linearly, or on a log scale where the signal changes most at
the short end (TE). Values outside the range are refused: the network never saw them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .errors import MRSynthError

SCALES = ("linear", "log")


def parse_assignments(items: Iterable[str]) -> dict[str, float]:
    """``["TR=2000", "TE=80"]`` -> ``{"TR": 2000.0, "TE": 80.0}``, refusing malformed or repeated names."""
    values: dict[str, float] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise MRSynthError(f"--param {item!r} is not NAME=VALUE: write e.g. --param TR=2000 --param TE=80")
        try:
            value = float(text)
        except ValueError:
            raise MRSynthError(f"--param {item!r}: {text!r} is not a number: write e.g. --param {name}=80") from None
        if not math.isfinite(value):
            raise MRSynthError(f"--param {item!r} is not a finite number: give a value in the model's range")
        if name in values:
            raise MRSynthError(f"--param {name} is given twice: give each parameter once")
        values[name] = value
    return values


def describe(declared: Mapping[str, Mapping]) -> str:
    """``TR (1200-10000 ms), TE (20-1000 ms)``, for messages and help texts."""
    return ", ".join(f"{name} ({spec['min']:g}-{spec['max']:g} {spec['unit']})" for name, spec in declared.items())


def check_values(model: str, declared: Mapping[str, Mapping] | None, given: Mapping[str, float]) -> dict[str, float]:
    """The given values, checked against the model's declaration: every one known, none missing, all in range."""
    if not declared:
        if given:
            raise MRSynthError(
                f"model {model} takes no acquisition parameters, but {', '.join(given)} were given: drop --param"
            )
        return {}
    unknown = [name for name in given if name not in declared]
    if unknown:
        raise MRSynthError(f"model {model} has no parameter {', '.join(unknown)}: it takes {describe(declared)}")
    missing = [name for name in declared if name not in given]
    if missing:
        example = " ".join(f"--param {name}={declared[name]['min']:g}" for name in missing)
        raise MRSynthError(f"model {model} needs {', '.join(missing)} ({describe(declared)}): add e.g. {example}")
    for name, value in given.items():
        spec = declared[name]
        if not spec["min"] <= value <= spec["max"]:
            raise MRSynthError(
                f"{name} = {value:g} {spec['unit']} is outside the range model {model} was trained on "
                f"({spec['min']:g}-{spec['max']:g} {spec['unit']}): give a value inside it"
            )
    return {name: float(given[name]) for name in declared}


def scaled(value: float, spec: Mapping) -> float:
    """``value`` mapped to [0, 1] over the declared range, linearly or on a log scale."""
    low, high = float(spec["min"]), float(spec["max"])
    scale = spec.get("scale", "linear")
    if scale == "log":
        return math.log(value / low) / math.log(high / low)
    if scale == "linear":
        return (value - low) / (high - low)
    raise MRSynthError(f"unknown parameter scale {scale!r}: use {' or '.join(SCALES)}")


def unscaled(value: Any, spec: Mapping) -> Any:
    """The inverse of ``scaled``: a conditioning value (a number, array or tensor) back in the parameter's units."""
    low, high = float(spec["min"]), float(spec["max"])
    scale = spec.get("scale", "linear")
    if scale == "log":
        return low * (high / low) ** value
    if scale == "linear":
        return low + value * (high - low)
    raise MRSynthError(f"unknown parameter scale {scale!r}: use {' or '.join(SCALES)}")


def rescaled(conditions: np.ndarray, source: Mapping[str, Mapping], target: Mapping[str, Mapping]) -> np.ndarray:
    """Rows of conditioning values scaled by the ``source`` declaration, scaled by ``target`` instead.

    Why: validation draws are made once, with the training config's declaration, and scored on
    models that may encode a parameter on another scale (``reparam_data.parameter_declaration``'s
    ``tr_encoding``); each must see the same settings its own way.
    """
    names = list(target)
    if list(source) != names:
        raise MRSynthError(f"conditions on {', '.join(source)} cannot be given to a model taking {', '.join(names)}")
    rows = [[scaled(unscaled(v, source[n]), target[n]) for n, v in zip(names, row, strict=True)] for row in conditions]
    return np.asarray(rows, dtype=conditions.dtype).reshape(conditions.shape)


def condition_vector(declared: Mapping[str, Mapping], values: Mapping[str, float]) -> list[float]:
    """The scaled values in declaration order: what the network's conditioning channels hold."""
    return [scaled(values[name], spec) for name, spec in declared.items()]
