"""Join a Param-to-Default network and a Default-to-Param network into one Param-to-Param model.

The joined model (``paramnet.ChainedParamNet``) takes Param-to-Param's four parameters, so it is a
drop-in ``reparam-param-sim``: ``mrsynth synthesize``, the registry and the ContrastSynthesis panel
see a Param-to-Param model. The stages must meet at one setting: the first was trained with
``target_setting`` equal to the input setting that the second (a Default-to-Param model) was
trained on, which is checked here rather than trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from scipy import ndimage

from .acquisition import condition_vector
from .checkpoint import LoadedModel, ModelInfo
from .ensemble import member
from .errors import MRSynthError
from .paramnet import ChainedParamNet
from .reparam_data import DEFAULT_INPUT, parameter_declaration


def first_stage(model: LoadedModel) -> LoadedModel:
    """A chained model's first stage as a Param-to-Default model of its own; any other model unchanged.

    Why: a bundled chain carries its first stage's weights and training record, so a new
    Default-to-Param model can be chained behind it without the first stage's run folder. The
    chain declares its second stage's TR and TE, which may be on another scale than the first
    stage's (``tr_encoding``), so the first stage's own declaration is rebuilt from its training
    record. An ensemble of chains that share their first stage (``mrsynth ensemble``) gives that stage.
    """
    if model.info.architecture == "Ensemble":
        members = [member(model, k) for k in range(len(model.network.members))]
        if any(m.info.architecture != "ChainedParamNet" for m in members):
            return model
        weights = [m.network.first.state_dict() for m in members]
        if any(not all(torch.equal(w[key], weights[0][key]) for key in w) for w in weights[1:]):
            raise MRSynthError(
                f"the members of ensemble {model.info.name} have different first stages: take one member with "
                "'mrsynth ensemble MODEL --member K --output MEMBER.pt' and give that"
            )
        model = members[0]
    if model.info.architecture != "ChainedParamNet":
        return model
    training = model.info.training["first"]
    config = training.get("config", {})
    info = replace(
        model.info,
        name=config.get("name", model.info.name),
        architecture="ParamNet",
        arguments=dict(model.info.arguments["first"]),
        parameters=parameter_declaration(str(training["variant"]), str(config.get("tr_encoding", "linear"))),
        training=dict(training),
    )
    return LoadedModel(model.network.first, info, model.path)


# What several second stages must share to be averaged behind one first stage.
SHARED = ("parameters", "normalisation", "output", "patch", "stride", "voxel_size")


def chain_models(
    first: LoadedModel,
    second: LoadedModel | Sequence[LoadedModel],
    name: str,
    version: str,
    residual_transfer: float = 0.0,
    form: str = "slope",
) -> tuple[ChainedParamNet, ModelInfo]:
    """The chained network (weights copied from both stages) and its description.

    ``first`` may itself be a chained model: its first stage is taken (``first_stage``). Several
    ``second`` models, trained alike, make a second stage that is their mean: the mean of their chains,
    with the first stage run once. ``residual_transfer`` > 0 makes ``synthesize`` add that share of
    what the chain misses of its input (``residual_transfer``, below; ``form`` as there).
    """
    if not 0.0 <= float(residual_transfer) <= 1.0:
        raise MRSynthError(f"residual_transfer {residual_transfer} is outside [0, 1]: 0 is the plain chain")
    if form not in TRANSFER_FORMS:
        raise MRSynthError(f"unknown residual-transfer form {form!r}: use one of {', '.join(TRANSFER_FORMS)}")
    first = first_stage(first)
    setting = first.info.training.get("config", {}).get("target_setting")
    if first.info.architecture != "ParamNet" or first.info.training.get("variant") != "param" or not setting:
        raise MRSynthError(
            f"{first.info.name} is not a Param-to-Param ParamNet trained to one output setting: train the first stage "
            "with variant: param and target_setting (configs/reparam-to-default-sim.yaml)"
        )
    seconds = [second] if isinstance(second, LoadedModel) else list(second)
    for model in seconds:
        if model.info.architecture != "ParamNet" or model.info.training.get("variant") != "default":
            raise MRSynthError(
                f"{model.info.name} is not a Default-to-Param ParamNet: give reparam-default-sim or one trained like it"
            )
    second = seconds[0]
    for model in seconds[1:]:
        differing = [key for key in SHARED if getattr(model.info, key) != getattr(second.info, key)]
        if differing:
            raise MRSynthError(
                f"second stages {second.info.name} and {model.info.name} are used differently ({', '.join(differing)} "
                "differ): average only Default-to-Param models trained with the same parameters and data"
            )
    if {k: float(v) for k, v in setting.items()} != DEFAULT_INPUT:
        raise MRSynthError(
            f"the first stage ends at TR {setting['TR']:g} ms, TE {setting['TE']:g} ms but the second starts at "
            f"TR {DEFAULT_INPUT['TR']:g} ms, TE {DEFAULT_INPUT['TE']:g} ms: train the first with that target_setting"
        )
    # ``via`` is the first stage's output setting, scaled as that stage was trained; the chain's TR and TE
    # are the second stage's, scaled as it was trained (its TR may be log-encoded: parameter_declaration)
    target = {name: first.info.parameters[name] for name in ("TR", "TE")}
    via = condition_vector(target, DEFAULT_INPUT)
    given = {name: spec for name, spec in first.info.parameters.items() if name.startswith("input_")}
    several = len(seconds) > 1
    arguments = [m.info.arguments for m in seconds] if several else second.info.arguments
    network = ChainedParamNet(first.info.arguments, arguments, via)
    network.first.load_state_dict(first.network.state_dict())
    for stage, model in zip(network.second.members if several else [network.second], seconds, strict=True):
        stage.load_state_dict(model.network.state_dict())
    info = ModelInfo(
        name=name,
        version=version,
        architecture="ChainedParamNet",
        arguments={"first": first.info.arguments, "second": arguments, "via": via},
        inputs=list(first.info.inputs),
        output=second.info.output,
        voxel_size=list(first.info.voxel_size),
        patch=list(second.info.patch),
        stride=list(second.info.stride),
        approach=first.info.approach,
        task=first.info.task,
        parameters=given | dict(second.info.parameters),
        normalisation=dict(second.info.normalisation)
        | (
            {"residual_transfer": float(residual_transfer), "residual_transfer_form": form} if residual_transfer else {}
        ),
        training={
            "variant": "param",
            "first": first.info.training,
            "second": [m.info.training for m in seconds] if several else second.info.training,
        },
    )
    return network, info


def noise_sigma(image: np.ndarray, body: np.ndarray) -> float:
    """Sigma of white noise in ``image`` inside ``body``, from its in-plane second differences.

    Why: residual transfer weighs what it carries by how much of it is noise, and a scan's noise
    level is not stored with it. A second difference (x[i-1] - 2 x[i] + x[i+1]) cancels constant
    and linearly shaded structure and keeps white noise at sqrt(6) sigma; the median absolute
    deviation (x 1.4826, Gaussian) ignores the edges that survive. Noise correlated between
    neighbours (k-space filtering, interpolation) reads lower.
    """
    differences = []
    for axis in (-1, -2):  # the two in-plane axes, paper order
        n = image.shape[axis]
        runs = [np.arange(k, n - 2 + k) for k in range(3)]
        inside = np.logical_and.reduce([np.take(body, r, axis=axis) for r in runs])
        left, middle, right = (np.take(image, r, axis=axis) for r in runs)
        differences.append((left - 2 * middle + right)[inside])
    d = np.concatenate(differences).astype(np.float64)
    if d.size == 0:
        raise MRSynthError("the body mask holds no three neighbouring voxels in a row: check the mask")
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(6.0))


def signal_share(residual: np.ndarray, body: np.ndarray) -> float:
    """The share of ``residual``'s variance inside ``body`` that is not white noise (``noise_sigma``), in [0, 1]."""
    variance = float(np.var(residual[body], dtype=np.float64))
    return max(0.0, 1.0 - noise_sigma(residual, body) ** 2 / variance) if variance > 0 else 0.0


TRANSFER_FORMS = ("slope", "shrink", "local", "ratio")
LOCAL_WINDOW = 7  # in-plane voxels of the local statistics of the "local" form, chosen on the validation subjects
RATIO_FLOOR = 0.05  # the "ratio" form's least denominator, in units of the input's 99th percentile
RATIO_CAP = 2.0  # and its greatest ratio; both looked at on the validation subjects, where they mattered little


def denoised(residual: np.ndarray, body: np.ndarray) -> np.ndarray:
    """``residual`` with its white noise filtered out voxel by voxel (Lee's filter).

    The local mean plus the deviation from it times the local share of the variance that is not
    noise (``noise_sigma``), over ``LOCAL_WINDOW`` in-plane voxels: structure keeps its contrast,
    flat noise is pulled to the local mean.
    """
    size = (1,) * (residual.ndim - 2) + (LOCAL_WINDOW, LOCAL_WINDOW)
    mean = ndimage.uniform_filter(residual.astype(np.float64), size=size, mode="reflect")
    variance = ndimage.uniform_filter(residual.astype(np.float64) ** 2, size=size, mode="reflect") - mean**2
    share = np.clip(1.0 - noise_sigma(residual, body) ** 2 / np.maximum(variance, 1e-12), 0.0, 1.0)
    return mean + share * (residual - mean)


def residual_transfer(
    target: np.ndarray,
    at_input: np.ndarray,
    image: np.ndarray,
    body: np.ndarray,
    weight: float,
    form: str = "slope",
) -> np.ndarray:
    """``target + weight * gain * carried``: what the chain misses of its input, carried over.

    Why: the chain passes through another contrast, so next to the input's own contrast, where the
    input rescaled is nearly the target, it drops detail that the input still holds. ``at_input`` is
    the chain rendered at the input's own setting, so the residual ``image - at_input`` (image
    normalised as the network's input) is what it dropped, plus the input's noise. ``gain`` says
    how that carries into the target's contrast. In the first three forms it is the ``slope`` of
    the line fitted from ``at_input`` to ``target`` over ``body``: about 1 next to the input's
    contrast, small or negative where the contrast turns. ``carried`` is, by ``form``:

    - ``slope``: the residual as it is;
    - ``shrink``: the residual times the share of its variance that is not noise (``signal_share``);
    - ``local``: the residual with its noise filtered out (``denoised``), times R^2 of that line, so
      that the structure is carried whole next to the input's contrast and less where the two
      renderings stop being linearly related;
    - ``ratio``: as ``local``, with the voxel's own ratio ``target / at_input`` as the gain instead
      of one slope for the whole image (denominator at least ``RATIO_FLOOR``, ratio within
      [0, ``RATIO_CAP``]): a signal changes with TR and TE by a factor of its own tissue's T1 and
      T2, so what the chain misread in a voxel carries over by that voxel's factor.

    Our addition, each form tried on the validation subjects (docs/other-systems.md, "Residual transfer"
    and the sections after it; the bundled chain uses ``shrink``).
    """
    if form not in TRANSFER_FORMS:
        raise MRSynthError(f"unknown residual-transfer form {form!r}: use one of {', '.join(TRANSFER_FORMS)}")
    residual = image - at_input
    x, y = at_input[body].astype(np.float64), target[body].astype(np.float64)
    if form == "ratio":
        gain = np.clip(target / np.maximum(at_input, RATIO_FLOOR), 0.0, RATIO_CAP)
    else:
        gain = float(np.polyfit(x, y, 1)[0])
    if form == "slope":
        carried = residual
    elif form == "shrink":
        carried = signal_share(residual, body) * residual
    else:
        carried = float(np.corrcoef(x, y)[0, 1] ** 2) * denoised(residual, body)
    return (target + float(weight) * gain * carried).astype(target.dtype)
