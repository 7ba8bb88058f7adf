"""Where a Param-to-Param model fails: its error over a grid of input settings, for one target setting.

A single mean validation loss hides which inputs a model cannot map. This prints, for each input
(TR, TE) of a grid, the MSE of the model on the same crops of a validation subject (in units of the
target's 99th percentile in the head, as in training), divided by the MSE of the best global linear
map of the input (< 1: better than rescaling), and the ratio of the output's mean to the target's
mean (< 1: too dark).

    PYTHONPATH=. python scripts/reparam_loss_map.py --model reparam-param-sim --target 6000 100
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from mrsynth.acquisition import condition_vector
from mrsynth.models import load_model
from mrsynth.reparam_data import Anatomy, CropSimulator, condition_values, parameter_declaration
from mrsynth.reparam_training import draw_groups, relative_mse
from mrsynth.simulate import load_spec

LABELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthseg_labels"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="reparam-param-sim", help="a Param-to-Param model (name or file)")
    parser.add_argument("--target", nargs=2, type=float, default=(6000.0, 100.0), metavar=("TR", "TE"))
    parser.add_argument("--subject", default=str(LABELS / "training_seg_14.nii.gz"), help="SynthSeg label map")
    parser.add_argument("--trs", nargs="+", type=float, default=(1500.0, 2000.0, 4500.0, 8000.0))
    parser.add_argument("--tes", nargs="+", type=float, default=(20.0, 30.0, 50.0, 80.0, 150.0, 400.0))
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    network, declared = model.network.eval(), model.info.parameters
    if list(declared) != list(parameter_declaration("param")):
        parser.error(f"{args.model} takes {', '.join(declared)}: give a Param-to-Param model")
    simulator = CropSimulator(Anatomy.from_file(args.subject, "synthseg", 24), load_spec())
    rng = np.random.default_rng(0)
    crops = simulator.random_crops(64, args.crops, rng)
    target = {"TR": args.target[0], "TE": args.target[1]}
    print(f"target TR {target['TR']:g} ms, TE {target['TE']:g} ms")
    print("cells: MSE over rescaling's MSE / output mean over target mean")
    print("input TR \\ TE " + " ".join(f"{te:>11g}" for te in args.tes))
    for tr in args.trs:
        cells = []
        for te in args.tes:
            source = {"TR": tr, "TE": te}
            x, y = simulator.pairs(source, target, crops, 64, rng)
            values = condition_vector(declared, condition_values(declared, source, target))
            k = np.repeat(np.asarray([values], dtype=np.float32), len(crops), axis=0)
            xt, yt = torch.from_numpy(x[:, None]), torch.from_numpy(y[:, None])
            with torch.no_grad():
                out = network(xt, torch.from_numpy(k))
                ratio = float(relative_mse(out, yt, xt, draw_groups(k)))
            cells.append(f"{ratio:5.2f}/{float(out.mean() / yt.mean()):4.2f}")
        print(f"{tr:>14g} " + " ".join(f"{c:>11}" for c in cells))


if __name__ == "__main__":
    main()
