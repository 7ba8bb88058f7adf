"""Registry files: what each model is and where its verified weights come from.

The bundled ``registry.json`` is read first; files named in ``MRSYNTH_REGISTRY`` (separated by
``os.pathsep``) are merged over it by name, so a site can add its own models without editing the
package. Every file is checked against ``registry.schema.json`` before any entry is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import MRSynthError

SCHEMA_VERSION = 2
REGISTRY_ENV = "MRSYNTH_REGISTRY"
_PACKAGE_DIR = Path(str(resources.files("mrsynth.models")))


@dataclass(frozen=True)
class RegistryEntry:
    """One registered model: what it does, how to run it, and how to check its weights."""

    name: str
    version: str
    task: str
    inputs: list[str]
    output: str
    voxel_size: list[float]
    orientation: str
    patch: list[int]
    stride: list[int]
    mode: str
    sha256: str
    size: int
    licence: str
    file: str | None = None
    urls: list[str] = field(default_factory=list)
    card: str | None = None
    card_text: str | None = None
    parameters: dict[str, dict[str, Any]] | None = None
    outputs: list[str] | None = None  # a model with several outputs lists them all, ``output`` first
    base: Path = _PACKAGE_DIR  # the folder of the registry file the entry came from

    @property
    def all_outputs(self) -> list[str]:
        """Every output, in order (``[output]`` for a single-output model)."""
        return list(self.outputs) if self.outputs else [self.output]

    @property
    def bundled(self) -> bool:
        return self.file is not None

    def path(self) -> Path:
        """The bundled checkpoint file (only for bundled entries)."""
        if self.file is None:
            raise MRSynthError(f"model {self.name} is not bundled: it is downloaded with 'mrsynth models pull'")
        return self.base / self.file

    def card_markdown(self) -> str:
        if self.card_text is not None:
            return self.card_text
        card = self.base / str(self.card)
        try:
            return card.read_text(encoding="utf-8")
        except OSError as err:
            raise MRSynthError(f"model card {card} of {self.name} cannot be read ({err.strerror}): reinstall") from None

    def to_dict(self) -> dict[str, Any]:
        """The entry as it appears in a registry file."""
        return {k: v for k, v in self.__dict__.items() if k != "base" and v not in (None, [])}


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _schema() -> dict[str, Any]:
    return json.loads((_PACKAGE_DIR / "registry.schema.json").read_text(encoding="utf-8"))


def valid_name(name: str) -> bool:
    """Whether ``name`` may name a model (and so its file in the cache)."""
    return re.search(_schema()["$defs"]["model"]["properties"]["name"]["pattern"], name) is not None


_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def schema_errors(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "") -> list[str]:
    """Where ``value`` breaks ``schema``: the subset of JSON Schema that registry.schema.json uses."""
    here = where or "the file"
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        errors = schema_errors(value, target, root, where)
        if errors:
            return errors
    if "type" in schema and not _TYPES[schema["type"]](value):
        return [f"{here} must be of type {schema['type']}, not {json.dumps(value)[:40]}"]
    if "const" in schema and value != schema["const"]:
        return [f"{here} must be {json.dumps(schema['const'])}, not {json.dumps(value)[:40]}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{here} must be one of {', '.join(map(json.dumps, schema['enum']))}, not {json.dumps(value)[:40]}"]
    errors: list[str] = []
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{here} must not be empty")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{here} {json.dumps(value)[:60]} does not match the pattern {schema['pattern']}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{here} must be at least {schema['minimum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            errors.append(f"{here} must be greater than {schema['exclusiveMinimum']}")
    if isinstance(value, list):
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        if len(value) < low or (high is not None and len(value) > high):
            count = f"exactly {low}" if low == high else f"at least {low}" if high is None else f"{low} to {high}"
            errors.append(f"{here} must have {count} items, not {len(value)}")
        for i, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), root, f"{where}[{i}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        errors += [f"{here} lacks the required field {key!r}" for key in schema.get("required", []) if key not in value]
        if schema.get("additionalProperties", True) is False:
            errors += [f"{here} has an unknown field {key!r}" for key in value if key not in properties]
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(item, properties[key], root, f"{where}.{key}" if where else key)
    return errors


def _rule_errors(models: list[dict[str, Any]]) -> list[str]:
    errors = []
    seen: set[str] = set()
    for i, model in enumerate(models):
        name = model["name"]
        if ("file" in model) == ("urls" in model):
            errors.append(f"models[{i}] ({name}) needs exactly one of 'file' (bundled) and 'urls' (downloadable)")
        if ("card" in model) == ("card_text" in model):
            errors.append(f"models[{i}] ({name}) needs exactly one of 'card' (a file) and 'card_text' (inline)")
        errors += _parameter_errors(model.get("parameters"), f"models[{i}] ({name})")
        if "outputs" in model and model["outputs"][0] != model["output"]:
            errors.append(f"models[{i}] ({name}) has outputs {model['outputs']} that do not start with its output")
        if name in seen:
            errors.append(f"models[{i}]: the name {name} appears twice")
        seen.add(name)
    return errors


def _parameter_errors(parameters: dict[str, Any] | None, where: str) -> list[str]:
    """Each declared parameter against ``$defs/parameter``, and a range with min below max."""
    if not parameters:
        return [] if parameters is None else [f"{where}: 'parameters' is empty: leave it out or declare some"]
    schema = _schema()
    errors = []
    for name, spec in parameters.items():
        found = schema_errors(spec, schema["$defs"]["parameter"], schema, f"{where}.parameters.{name}")
        if not found and not spec["min"] < spec["max"]:
            found = [f"{where}.parameters.{name} has min {spec['min']} not below max {spec['max']}"]
        if not found and spec.get("scale") == "log" and spec["min"] <= 0:
            found = [f"{where}.parameters.{name} is on a log scale but its min {spec['min']} is not positive"]
        errors += found
    return errors


def parse_registry(data: Any, base: Path, source: str) -> dict[str, RegistryEntry]:
    """Check a registry's JSON content and return its entries by name; ``base`` anchors relative files."""
    if isinstance(data, dict) and data.get("schema_version") not in (None, SCHEMA_VERSION):
        raise MRSynthError(
            f"registry {source} has schema_version {data['schema_version']} but this mrsynth reads version "
            f"{SCHEMA_VERSION}: update mrsynth or rewrite the file"
        )
    schema = _schema()
    errors = schema_errors(data, schema, schema)
    if not errors:
        errors = _rule_errors(data["models"])
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise MRSynthError(f"registry {source} is invalid: {errors[0]}{more}: fix it (see registry.schema.json)")
    return {model["name"]: RegistryEntry(**model, base=base) for model in data["models"]}


def read_registry(path: Path) -> dict[str, RegistryEntry]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise MRSynthError(f"registry {path} cannot be read ({err.strerror}): check {REGISTRY_ENV}") from None
    except json.JSONDecodeError as err:
        raise MRSynthError(f"registry {path} is not valid JSON ({err}): fix it") from None
    return parse_registry(data, path.resolve().parent, str(path))


def registry() -> dict[str, RegistryEntry]:
    """All registered models by name: the bundled registry, then the files in ``MRSYNTH_REGISTRY`` over it."""
    entries = read_registry(_PACKAGE_DIR / "registry.json")
    for item in os.environ.get(REGISTRY_ENV, "").split(os.pathsep):
        if item:
            entries.update(read_registry(Path(item)))
    return entries
