"""Combine models trained alike (e.g. from different seeds) into one checkpoint that returns their mean.

An ensemble is one more architecture (``networks.Ensemble``), so it is stored, registered, verified
and run like any model: ``synthesize`` and the Slicer modules need nothing new. Only models that
are used the same way can be combined: the same task, inputs, output, grid, patch, stride and
normalisation (histogram landmarks included), so that one preprocessing serves every member.
Conditioned models (``info.parameters``, e.g. re-parameterisation) must declare the same parameters
and ranges, and chained ones the same residual transfer (it is applied to the ensemble's mean). Kernels fitted
to one member (``trained_lr_kernels``) are dropped: fit them again on the ensemble (``mrsynth train-kernel``).
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

from .checkpoint import LoadedModel, save_checkpoint
from .errors import MRSynthError
from .networks import Ensemble

# What may differ between members: the weights and how they were trained.
OWN_FIELDS = ("name", "architecture", "arguments", "version", "training", "trained_lr_kernels")


def combine(models: list[LoadedModel], name: str | None = None) -> LoadedModel:
    """One model whose output is the mean of ``models``' outputs; its description is the first member's."""
    if len(models) < 2:
        raise MRSynthError(f"an ensemble needs two or more models, not {len(models)}")
    first = models[0].info
    shared = {k: v for k, v in first.to_dict().items() if k not in OWN_FIELDS}
    for model in models[1:]:
        other = {k: v for k, v in model.info.to_dict().items() if k not in OWN_FIELDS}
        differing = sorted(k for k in shared if shared[k] != other.get(k))
        if differing:
            raise MRSynthError(
                f"models {first.name} and {model.info.name} are used differently ({', '.join(differing)} differ): "
                "combine only models trained with the same task, data and config"
            )
    members = [{"architecture": m.info.architecture, "arguments": m.info.arguments} for m in models]
    network = Ensemble(members)
    for target, model in zip(network.members, models, strict=True):
        target.load_state_dict(model.network.state_dict())
    network.eval()
    info = copy.deepcopy(first)
    info.name = name or first.name
    info.architecture = "Ensemble"
    info.arguments = {"members": members}
    info.trained_lr_kernels = {}
    info.training = {
        "ensemble": "mean output of the members",
        "members": [{"name": m.info.name, "version": m.info.version, "training": m.info.training} for m in models],
    }
    return LoadedModel(network=network, info=info, path=None)


def member(model: LoadedModel, index: int) -> LoadedModel:
    """Member ``index`` (from 0) of an ensemble as a model of its own, e.g. to fine-tune each member."""
    if model.info.architecture != "Ensemble":
        raise MRSynthError(
            f"model {model.info.name} is a {model.info.architecture}, not an ensemble: it has no members"
        )
    count = len(model.network.members)
    if not 0 <= index < count:
        raise MRSynthError(f"model {model.info.name} has {count} members: give --member 0 to {count - 1}, not {index}")
    described = model.info.arguments["members"][index]
    network = copy.deepcopy(model.network.members[index]).eval()
    info = copy.deepcopy(model.info)
    info.architecture, info.arguments = described["architecture"], described["arguments"]
    info.training = model.info.training["members"][index]["training"]
    return LoadedModel(network=network, info=info, path=None)


def add_ensemble_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "ensemble",
        help="combine models trained alike (e.g. other seeds) into one that returns their mean",
        description="Write one checkpoint whose output is the mean of the given models' outputs. The models must "
        "be used the same way (task, inputs, output, grid, normalisation, acquisition parameters); it runs like any "
        "model. With --member, write one member of an ensemble instead (to fine-tune each member with mrsynth "
        "train --set init_weights=...).",
    )
    parser.add_argument("models", nargs="+", help="two or more models (names or checkpoint files), or one ensemble")
    parser.add_argument("--member", type=int, help="write this member (from 0) of the one ensemble given")
    parser.add_argument("--output", required=True, help="checkpoint file to write")
    parser.add_argument("--name", help="the written model's name (default: the first model's)")
    parser.add_argument("--version", help="the written model's version (default: the first model's)")
    parser.set_defaults(func=run_ensemble)
    return parser


def run_ensemble(args: argparse.Namespace) -> int:
    from .files import check_checkpoint_path
    from .models import load_model

    output = check_checkpoint_path(args.output)
    if args.member is not None:
        if len(args.models) != 1:
            raise MRSynthError(f"--member takes one ensemble, not {len(args.models)} models")
        written = member(load_model(args.models[0]), args.member)
        what = f"member {args.member} of {args.models[0]}"
    else:
        written = combine([load_model(m) for m in args.models])
        what = f"the mean of {len(args.models)} models"
    if args.name:
        written.info.name = args.name
    if args.version:
        written.info.version = args.version
    save_checkpoint(output, written.network, written.info)
    print(f"wrote {output}: {written.info.name}, {what}")
    return 0
