"""A chain with several second stages against the ensemble of its chains, side by side in one run.

``reparam-param-sim`` (since version 9) is one first stage followed by the mean of three second
stages. The same model can be written as the mean of three whole chains (``mrsynth ensemble``),
which runs the first stage once per chain. This builds that ensemble from the bundled model's own
weights, runs both through ``synthesize`` on the BrainWeb phantom (an input at TR 2 s / TE 20 ms,
rendered at TR 1.5 s / TE 20 ms, with the residual transfer and the mirrored pass, as users run it),
checks that the outputs agree, and prints the median times (interleaved rounds) and their ratio.

    PYTHONPATH=. python scripts/bench_reparam_chain.py [--model reparam-param-sim] [--slices 24] [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import SimpleITK as sitk
import torch
from eval_reparam import acquire_inputs, image

from mrsynth.checkpoint import LoadedModel
from mrsynth.ensemble import combine
from mrsynth.models import load_model
from mrsynth.paramnet import ChainedParamNet
from mrsynth.reparam_data import Anatomy
from mrsynth.simulate import bundled_phantom, load_spec
from mrsynth.synthesis import synthesize

SOURCE = {"TR": 2000.0, "TE": 20.0}
VALUES = {"input_TR": 2000.0, "input_TE": 20.0, "TR": 1500.0, "TE": 20.0}


def chains_of(model: LoadedModel) -> list[LoadedModel]:
    """Each second stage of ``model`` behind its first stage, as a chain of its own."""
    arguments, training = model.info.arguments, model.info.training
    if model.info.architecture != "ChainedParamNet" or not isinstance(arguments["second"], list):
        raise SystemExit(f"{model.info.name} is not a chain with several second stages")
    chains = []
    for k, (second, stage) in enumerate(zip(arguments["second"], model.network.second.members, strict=True)):
        network = ChainedParamNet(arguments["first"], second, arguments["via"])
        network.first.load_state_dict(model.network.first.state_dict())
        network.second.load_state_dict(stage.state_dict())
        info = copy.deepcopy(model.info)
        info.arguments = {"first": arguments["first"], "second": second, "via": arguments["via"]}
        info.training = training | {"second": training["second"][k]}
        chains.append(LoadedModel(network.eval(), info))
    return chains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="reparam-param-sim")
    parser.add_argument("--slices", type=int, default=24, help="axial slices of the phantom")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shared = load_model(args.model)
    ensemble = combine(chains_of(shared))
    anatomy = Anatomy.from_labels("brainweb", bundled_phantom(), "brainweb", slices=args.slices)
    x = image(acquire_inputs(anatomy, [SOURCE], np.random.default_rng(1), load_spec())[0])
    models = {"one first stage (bundled)": shared, "ensemble of the chains": ensemble}
    times: dict[str, list[float]] = {name: [] for name in models}
    outputs = {}
    for _ in range(args.repeats):  # interleaved, so that drifts in machine load hit both alike
        for name, model in models.items():
            start = time.perf_counter()
            outputs[name] = sitk.GetArrayFromImage(synthesize(model, [x], parameters=VALUES, device="cpu").hr)
            times[name].append(time.perf_counter() - start)
    a, b = outputs.values()
    print(f"{args.slices} slices, {args.threads} threads, {args.repeats} interleaved rounds")
    print(f"largest output difference: {float(np.abs(a - b).max()):.2e} (output maximum {float(np.abs(a).max()):.2f})")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name}: median {median:.2f} s ({', '.join(f'{t:.2f}' for t in times[name])})")
    ratio = medians["ensemble of the chains"] / medians["one first stage (bundled)"]
    print(f"ratio (ensemble / one first stage): {ratio:.2f}")


if __name__ == "__main__":
    main()
