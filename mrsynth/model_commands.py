"""``mrsynth models``: list the registered models and show their cards."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_models_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list registered models, show a model card",
        description="List the models this installation knows (bundled ones ship inside the package) or show one "
        "model's card: what it was trained on, its inputs in order, its measured metrics.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="one line per registered model").set_defaults(func=run_models)
    show = actions.add_parser("show", help="a model's card and description (a name or a checkpoint file)")
    show.add_argument("model", help="registered name or checkpoint file")
    show.add_argument("--json", action="store_true", help="print the full description as JSON")
    show.set_defaults(func=run_models)


def run_models(args: argparse.Namespace) -> int:
    from .checkpoint import read_checkpoint
    from .models import registry, resolve

    entries = registry()
    if args.action == "list":
        if not entries:
            print("no models registered")
        for entry in entries.values():
            inputs = " + ".join(entry.inputs)
            print(f"{entry.name:<20} v{entry.version:<6} {entry.task:<20} {inputs} -> {entry.output}")
        return 0
    path = resolve(args.model)
    info = read_checkpoint(path)["info"]
    entry = entries.get(args.model)
    if args.json:
        print(json.dumps({"registry": entry.__dict__ if entry else None, "checkpoint": info}, indent=2, default=str))
        return 0
    print(f"{info['name']} (version {info['version']}) - {path}")
    print(f"inputs, in order: {', '.join(info['inputs'])}; output: {info['output']}")
    print(f"trained voxel size (SI AP LR, mm): {info['voxel_size']}; patch {info['patch']}; stride {info['stride']}")
    print(f"architecture: {info['architecture']} {info['arguments']}")
    if entry is not None:
        print()
        print(entry.card_text())
    return 0
