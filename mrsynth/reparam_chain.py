"""Join a Param-to-Default network and a Default-to-Param network into one Param-to-Param model.

The joined model (``paramnet.ChainedParamNet``) takes Param-to-Param's four parameters, so it is a
drop-in ``reparam-param-sim``: ``mrsynth synthesize``, the registry and the ContrastSynthesis panel
see a Param-to-Param model. The stages must meet at one setting: the first was trained with
``target_setting`` equal to the input setting that the second (a Default-to-Param model) was
trained on, which is checked here rather than trusted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from .acquisition import condition_vector
from .checkpoint import LoadedModel, ModelInfo
from .errors import MRSynthError
from .paramnet import ChainedParamNet
from .reparam_data import DEFAULT_INPUT, Anatomy, parameter_declaration
from .reparam_training import ReparamSampler, draw_groups, relative_mse


def first_stage(model: LoadedModel) -> LoadedModel:
    """A chained model's first stage as a Param-to-Default model of its own; any other model unchanged.

    Why: a bundled chain carries its first stage's weights and training record, so a new
    Default-to-Param model can be chained behind it without the first stage's run folder.
    """
    if model.info.architecture != "ChainedParamNet":
        return model
    training = model.info.training["first"]
    info = replace(
        model.info,
        name=training.get("config", {}).get("name", model.info.name),
        architecture="ParamNet",
        arguments=dict(model.info.arguments["first"]),
        training=dict(training),
    )
    return LoadedModel(model.network.first, info, model.path)


def chain_models(first: LoadedModel, second: LoadedModel, name: str, version: str) -> tuple[ChainedParamNet, ModelInfo]:
    """The chained network (weights copied from both stages) and its description.

    ``first`` may itself be a chained model: its first stage is taken (``first_stage``).
    """
    first = first_stage(first)
    setting = first.info.training.get("config", {}).get("target_setting")
    if first.info.architecture != "ParamNet" or first.info.training.get("variant") != "param" or not setting:
        raise MRSynthError(
            f"{first.info.name} is not a Param-to-Param ParamNet trained to one output setting: train the first stage "
            "with variant: param and target_setting (configs/reparam-to-default-sim.yaml)"
        )
    if second.info.architecture != "ParamNet" or second.info.training.get("variant") != "default":
        raise MRSynthError(
            f"{second.info.name} is not a Default-to-Param ParamNet: give reparam-default-sim or one trained like it"
        )
    if {k: float(v) for k, v in setting.items()} != DEFAULT_INPUT:
        raise MRSynthError(
            f"the first stage ends at TR {setting['TR']:g} ms, TE {setting['TE']:g} ms but the second starts at "
            f"TR {DEFAULT_INPUT['TR']:g} ms, TE {DEFAULT_INPUT['TE']:g} ms: train the first with that target_setting"
        )
    via = condition_vector(parameter_declaration("default"), DEFAULT_INPUT)
    network = ChainedParamNet(first.info.arguments, second.info.arguments, via)
    network.first.load_state_dict(first.network.state_dict())
    network.second.load_state_dict(second.network.state_dict())
    info = ModelInfo(
        name=name,
        version=version,
        architecture="ChainedParamNet",
        arguments={"first": first.info.arguments, "second": second.info.arguments, "via": via},
        inputs=list(first.info.inputs),
        output=second.info.output,
        voxel_size=list(first.info.voxel_size),
        patch=list(second.info.patch),
        stride=list(second.info.stride),
        approach=first.info.approach,
        task=first.info.task,
        parameters=first.info.parameters,
        normalisation=dict(second.info.normalisation),
        training={"variant": "param", "first": first.info.training, "second": second.info.training},
    )
    return network, info


def with_blend(model: LoadedModel) -> LoadedModel:
    """A chained model given a blend (``ChainedParamNet``'s ``blend``), starting as the chain itself."""
    if model.info.architecture != "ChainedParamNet":
        raise MRSynthError(f"{model.info.name} is a {model.info.architecture}: a blend corrects a ChainedParamNet")
    arguments = dict(model.info.arguments) | {"blend": True}
    network = ChainedParamNet(**arguments)
    missing, unexpected = network.load_state_dict(model.network.state_dict(), strict=False)
    if unexpected or any(not key.startswith("blend.") for key in missing):
        raise MRSynthError(f"{model.info.name}'s weights do not fit a blended chain: {missing or unexpected}")
    return LoadedModel(network, replace(model.info, arguments=arguments), model.path)


def fit_blend(
    model: LoadedModel,
    train: list[Anatomy],
    val: list[Anatomy],
    config: dict[str, Any],
    iterations: int,
    learning_rate: float = 1.0e-3,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[LoadedModel, list[tuple[int, float]]]:
    """Fit a chain's blend with both stages frozen: Adam on the relative MSE of ``config``'s draws.

    Returns the model with the blend of the lowest validation loss (drawn once from ``val``, the
    subjects' own tissues) and the validation history [(iteration, loss)], iteration 0 being the
    chain alone. The stages run in evaluation mode and without gradients, so a fit takes minutes on a CPU.
    """
    model = model if model.network.blend is not None else with_blend(model)
    network = model.network.eval()
    network.requires_grad_(False)
    network.blend.requires_grad_(True)
    optimizer = torch.optim.Adam(network.blend.parameters(), lr=learning_rate)
    size = int(config["batch_size"])
    sampler = ReparamSampler(train, config, np.random.default_rng(seed))
    checking = ReparamSampler(val, config, np.random.default_rng(seed + 1), augment=False)
    batches = [checking.draw(size) for _ in range(max(1, int(config["val_patches"]) // size))]

    def loss(x: np.ndarray, y: np.ndarray, k: np.ndarray) -> torch.Tensor:
        xt, yt, kt = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(k)
        with torch.no_grad():
            chained = network.chain(xt, kt)
        return relative_mse(network.blended(xt, chained, kt), yt, xt, draw_groups(k))

    def validate() -> float:
        with torch.no_grad():
            return float(np.mean([float(loss(*batch)) for batch in batches]))

    history = [(0, validate())]
    best = (history[0][1], {k: v.clone() for k, v in network.blend.state_dict().items()})
    every = max(1, int(config["epoch_patches"]) // size)
    for iteration in range(1, iterations + 1):
        value = loss(*sampler.draw(size))
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        if iteration % every == 0 or iteration == iterations:
            history.append((iteration, validate()))
            if history[-1][1] < best[0]:
                best = (history[-1][1], {k: v.clone() for k, v in network.blend.state_dict().items()})
        if progress is not None:
            progress(iteration, iterations, float(value))
    network.blend.load_state_dict(best[1])
    record = {"blend": {"iterations": iterations, "learning_rate": learning_rate, "seed": seed, "history": history}}
    info = replace(model.info, training=dict(model.info.training) | record)
    return LoadedModel(network, info, model.path), history
