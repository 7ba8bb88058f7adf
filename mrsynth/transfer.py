"""Transfer a single-contrast super-resolution model to several contrasts (paper 003, section 3.2).

The paper duplicated the first layer's weights for each input contrast and the last layer's for
each output, then fine-tuned on little data. We divide the duplicated first-layer weights by the
number of inputs, so that the converted network, given the same image in every channel, computes
exactly the original's features and returns the original's output in every channel: fine-tuning
starts from the single-contrast model's behaviour rather than from a rescaled one.

For echoes of one acquisition (DESS S1, S2) ``ratio_residual`` builds the network with
``networks.MRSR``'s ``ratio_residual`` and zeroes the later outputs' own last-layer weights: the
converted model restores the first echo as the single-contrast model does and carries that
correction into the later echoes at their interpolated ratio, so it starts from the interpolation's
echo ratio (and T2), and fine-tuning learns only where that ratio must change.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

from .checkpoint import LoadedModel, save_checkpoint
from .errors import MRSynthError
from .networks import build_network

FIRST, HEAD = "body.0", "head"


def expand_contrasts(
    model: LoadedModel, contrasts: list[str], name: str | None = None, ratio_residual: bool = False
) -> LoadedModel:
    """A model taking and returning ``contrasts`` (in order), built from a single-contrast MRSR model."""
    info = model.info
    if info.architecture != "MRSR" or info.arguments.get("in_channels", 1) != 1:
        raise MRSynthError(
            f"model {info.name} is a {info.arguments.get('in_channels', 1)}-contrast {info.architecture}: transfer "
            "starts from a single-contrast MRSR super-resolution model"
        )
    if len(contrasts) < 2 or len(set(contrasts)) != len(contrasts):
        raise MRSynthError(f"give two or more distinct contrast names, not {contrasts}")
    count = len(contrasts)
    state = model.network.state_dict()
    new_state = dict(state)
    new_state[f"{FIRST}.weight"] = state[f"{FIRST}.weight"].repeat(1, count, 1, 1, 1) / count
    new_state[f"{HEAD}.weight"] = state[f"{HEAD}.weight"].repeat(count, 1, 1, 1, 1)
    new_state[f"{HEAD}.bias"] = state[f"{HEAD}.bias"].repeat(count)
    arguments = dict(info.arguments, in_channels=count, out_channels=count)
    if ratio_residual:
        new_state[f"{HEAD}.weight"][1:] = 0
        new_state[f"{HEAD}.bias"][1:] = 0
        arguments["ratio_residual"] = True
    network = build_network("MRSR", arguments)
    network.load_state_dict(new_state)
    network.eval()
    new_info = copy.deepcopy(info)
    new_info.name = name or f"{info.name}-{'-'.join(contrasts)}"
    new_info.arguments = arguments
    new_info.inputs = [f"{c} (thick)" for c in contrasts]
    new_info.output = contrasts[0]
    new_info.outputs = list(contrasts)
    new_info.training = {
        "transferred_from": info.name,
        "transfer": "first layer duplicated per input (divided by their number), last layer per output"
        + (" (later outputs' own at zero: they carry the first's residual at their ratio)" if ratio_residual else ""),
        "source_training": info.training,
    }
    return LoadedModel(network=network, info=new_info, path=None)


def add_transfer_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "transfer",
        help="turn a single-contrast super-resolution model into a multi-contrast one (then fine-tune it)",
        description="Paper 003, section 3.2: duplicate a single-contrast MRSR model's first-layer weights for each "
        "input contrast and its last layer for each output. Fine-tune the result with mrsynth train --config CONFIG "
        "--run-dir RUN, where the config (task: superres) has init_weights: FILE, data.joint_contrasts: true, the "
        "contrasts as data.contrasts and the same model.depth and model.width (configs/superres-x4-dess-sim.yaml "
        "is one).",
    )
    parser.add_argument("model", help="single-contrast super-resolution model (name or checkpoint file)")
    parser.add_argument("--contrasts", nargs="+", required=True, help="the new model's contrasts, in order")
    parser.add_argument("--output", required=True, help="checkpoint file to write")
    parser.add_argument("--name", help="the new model's name (default: MODEL-CONTRAST1-CONTRAST2...)")
    parser.add_argument(
        "--ratio-residual",
        action="store_true",
        help="echoes of one acquisition (e.g. DESS S1 S2): later echoes carry the first's residual at their "
        "interpolated ratio, their own residual starting at zero (fine-tune with model.ratio_residual=true)",
    )
    parser.set_defaults(func=run_transfer)
    return parser


def run_transfer(args: argparse.Namespace) -> int:
    from .files import check_checkpoint_path
    from .models import load_model

    output = check_checkpoint_path(args.output)
    converted = expand_contrasts(load_model(args.model), list(args.contrasts), args.name, args.ratio_residual)
    save_checkpoint(output, converted.network, converted.info)
    print(f"wrote {output}: {converted.info.name}, {len(args.contrasts)} contrasts in and out")
    return 0
