"""Score re-parameterisation models on the same validation draws, to choose between runs without the test phantom.

Each training run validates on draws of its own seed, so the best validation losses of two runs are
not comparable. This script draws fixed batches from the validation subjects of a training config
(``data.val``; its ``draws``, ``tr_scale`` and ``near_input``, on the subjects' own tissues: no
``extracranial_shuffle``) once per ``--seeds`` value and scores
every model on the same batches with the relative MSE (``reparam_training.relative_mse``: 1 = the
best linear map of each draw's input; below 1 is better than rescaling):

    PYTHONPATH=. python scripts/reparam_validation.py reparam-param-sim RUN/model.pt \\
        --config RUN/config.yaml --seeds 22 32 99
"""

from __future__ import annotations

import argparse
import glob

import numpy as np
import torch

from mrsynth.acquisition import rescaled
from mrsynth.checkpoint import load_checkpoint
from mrsynth.errors import MRSynthError
from mrsynth.models import load_model
from mrsynth.reparam_data import Anatomy, parameter_declaration
from mrsynth.reparam_training import REPARAM_DEFAULTS, ReparamSampler, draw_groups, relative_mse
from mrsynth.training import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "models", nargs="+", help="registry names or checkpoint files (Param-Nets of the config's variant, chained too)"
    )
    parser.add_argument("--config", required=True, help="a training config (a run's config.yaml) for data.val")
    parser.add_argument("--seeds", type=int, nargs="+", default=[22, 32, 99], help="one validation set each")
    parser.add_argument("--batches", type=int, default=16, help="batches per validation set (batch_size each)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config, {}, REPARAM_DEFAULTS)
    files = sorted(f for pattern in config["data"]["val"] for f in glob.glob(pattern))
    if not files:
        raise MRSynthError(f"data.val of {args.config} matches no label map: give a config with validation subjects")
    subjects = [Anatomy.from_file(f, config["data"]["atlas"], int(config["data"]["slices"])) for f in files]
    models = {name: load_checkpoint(name) if name.endswith(".pt") else load_model(name) for name in args.models}
    declared = parameter_declaration(str(config["variant"]), str(config["tr_encoding"]))
    for name, model in models.items():
        param_net = model.info.architecture in ("ParamNet", "ChainedParamNet")
        if not param_net or list(model.info.parameters) != list(declared):
            raise MRSynthError(
                f"{name} is not a Param-Net of the config's variant ({config['variant']}, conditioned on "
                f"{', '.join(declared)}): give models of that variant, or the config they were trained with"
            )
    size = int(config["batch_size"])
    means: dict[str, list[float]] = {name: [] for name in models}
    for seed in args.seeds:
        sampler = ReparamSampler(subjects, config, np.random.default_rng(seed), augment=False)  # own tissues
        batches = [sampler.draw(size) for _ in range(args.batches)]
        for name, model in models.items():
            network, own = model.network.eval(), model.info.parameters
            with torch.no_grad():
                # each model sees the draws' settings on its own scales (a TR may be log-encoded)
                losses = [
                    float(relative_mse(network(torch.from_numpy(x), torch.from_numpy(rescaled(k, declared, own))),
                                       torch.from_numpy(y), torch.from_numpy(x), draw_groups(k)))
                    for x, y, k in batches
                ]  # fmt: skip
            means[name].append(float(np.mean(losses)))
            print(f"seed {seed}: {name}: relative MSE {np.mean(losses):.4f} (median over batches "
                  f"{np.median(losses):.4f})", flush=True)  # fmt: skip
    for name, values in means.items():
        print(f"{name}: mean over the {len(values)} validation sets {np.mean(values):.4f}")


if __name__ == "__main__":
    main()
