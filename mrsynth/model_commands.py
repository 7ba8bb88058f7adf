"""``mrsynth models``: list, describe, download, import, remove and verify models."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .acquisition import describe

ENVIRONMENT = (
    "Environment: MRSYNTH_MODELS_DIR (the cache; default ~/.cache/mrsynth/models), MRSYNTH_MODELS_PATH (read-only "
    "shared caches, searched after it), MRSYNTH_MODEL_MIRROR (download <mirror>/<name>.pt instead of the registry's "
    "URLs), MRSYNTH_REGISTRY (extra registry files merged over the bundled one)."
)


def add_models_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list, describe, download, import, remove and verify models",
        description="Models are found by name through the registry: bundled ones ship inside the package, the others "
        "are downloaded into a cache (or imported by hand on offline sites), and every registered file is checked "
        "against its sha256 before use. " + ENVIRONMENT,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="one line per model, and whether it is ready").set_defaults(func=run_list)
    info = actions.add_parser(
        "info", aliases=["show"], help="a model's registry entry, card and download state (a name or a file)"
    )
    info.add_argument("model", help="model name or checkpoint file")
    info.add_argument("--json", action="store_true", help="print the full description as JSON")
    info.set_defaults(func=run_info)
    pull = actions.add_parser("pull", help="download a registered model into the cache and verify it")
    pull.add_argument("model", help="registered model name")
    pull.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a silent server (default 30)")
    pull.add_argument("--retries", type=int, default=3, help="tries again after a failure that may pass (default 3)")
    pull.set_defaults(func=run_pull)
    imp = actions.add_parser("import", help="store a checkpoint or zip carried in by hand (offline sites)")
    imp.add_argument("file", type=Path, help="checkpoint (.pt) or zip holding one .pt and optionally its card .md")
    imp.set_defaults(func=run_import)
    remove = actions.add_parser("remove", help="delete a model's copy in the cache")
    remove.add_argument("model", help="model name")
    remove.set_defaults(func=run_remove)
    verify = actions.add_parser("verify", help="check every bundled and stored model against its sha256")
    verify.set_defaults(func=run_verify)


def _entry(name: str) -> Any:
    from .errors import MRSynthError
    from .models import registry

    entries = registry()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise MRSynthError(f"unknown model {name} (registered: {known}): check the name with 'mrsynth models list'")
    return entries[name]


def run_list(args: argparse.Namespace) -> int:
    from .models import registry
    from .models.cache import state, user_models

    entries = registry()
    for entry in entries.values():
        inputs = " + ".join(entry.inputs)
        outputs = " + ".join(entry.all_outputs)
        print(f"{entry.name:<20} v{entry.version:<6} {entry.task:<20} {inputs} -> {outputs:<10} {state(entry)[0]}")
    for name, path in user_models(set(entries)).items():
        print(f"{name:<20} user model (unverified) {path}")
    if not entries:
        print("no models registered")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from .checkpoint import read_checkpoint
    from .models import registry, resolve, sha256_of
    from .models.cache import state

    entries = registry()
    entry = entries.get(args.model)
    if entry is None:  # a user model or a file: its checkpoint describes it (read with weights_only)
        path = resolve(args.model)
        digest = sha256_of(path)
        known = next((e.name for e in entries.values() if e.sha256 == digest), None)
        info = read_checkpoint(path)["info"]
        card_file = path.with_suffix(".md")
        card = card_file.read_text(encoding="utf-8") if card_file.is_file() else None
        if args.json:
            print(json.dumps({"registry": None, "path": str(path), "checkpoint": info}, indent=2, default=str))
            return 0
        print(f"{info['name']} (version {info['version']}) - {path}")
        print(
            f"the file of registered model {known} (verified)"
            if known
            else "not in the registry: a user model (unverified)"
        )
        print(f"inputs, in order: {', '.join(info['inputs'])}; output: {info['output']}")
        print(
            f"trained voxel size (SI AP LR, mm): {info['voxel_size']}; patch {info['patch']}; stride {info['stride']}"
        )
        print(f"architecture: {info['architecture']} {info['arguments']}")
        if card:
            print("\n" + card)
        return 0
    status, path = state(entry, verify=True)
    if args.json:
        described = {"registry": entry.to_dict(), "state": status, "path": str(path) if path else None}
        print(json.dumps(described, indent=2))
        return 0
    print(f"{entry.name} (version {entry.version}) - {status}" + (f": {path}" if path else ""))
    outputs = ", ".join(entry.all_outputs)
    print(f"task: {entry.task}; inputs, in order: {', '.join(entry.inputs)}; outputs, in order: {outputs}")
    if entry.parameters:
        print(f"parameters (--param NAME=VALUE): {describe(entry.parameters)}")
    print(f"trained voxel size (SI AP LR, mm): {entry.voxel_size}; orientation: {entry.orientation}")
    print(f"defaults: mode {entry.mode}; patch {entry.patch}; stride {entry.stride} (SI AP LR)")
    print(f"licence: {entry.licence}; {entry.size} bytes, sha256 {entry.sha256}")
    for url in entry.urls:
        print(f"download: {url}")
    print("\n" + entry.card_markdown())
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .errors import MRSynthError
    from .models import pull

    if args.timeout <= 0 or args.retries < 0:
        raise MRSynthError("--timeout must be positive and --retries at least 0")
    entry = _entry(args.model)
    if entry.bundled:
        print(f"{entry.name} is bundled with mrsynth: nothing to download")
        return 0
    with tqdm(desc=f"downloading {entry.name}", total=entry.size, unit="B", unit_scale=True, leave=False) as bar:

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        path = pull(entry, progress=progress, timeout=args.timeout, retries=args.retries)
    print(f"{entry.name}: verified, {path}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from .models import registry
    from .models.importing import import_model

    imported = import_model(args.file, registry())
    note = "verified against the registry" if imported.verified else "user model (unverified)"
    print(f"{imported.name}: {note}, {imported.path}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from .models import registry
    from .models.cache import remove

    for path in remove(args.model, registry()):
        print(f"removed {path}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from .models import registry
    from .models.cache import verify_all

    checks = verify_all(registry())
    for check in checks:
        print(f"{check.name:<20} {check.note:<45} {check.path}")
    failed = [check.name for check in checks if not check.ok]
    if failed:
        print(f"{len(failed)} of {len(checks)} files failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(checks)} files are good")
    return 0
