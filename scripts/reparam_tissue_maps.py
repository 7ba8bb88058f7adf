"""What a tissue-map Param-to-Param model (``mrsynth.tissue_maps``) sees: its maps per tissue on the phantom.

The held-out BrainWeb phantom is acquired as ``scripts/eval_reparam.py`` does (24 axial slices, SNR 30,
seed 1) at each input setting given; the model's PD, fat fraction, T1 and T2 maps are computed on it,
and their medians over each tissue's voxels are printed beside the tissue table's values:

    PYTHONPATH=. python scripts/reparam_tissue_maps.py --model RUN/model.pt --inputs 4500,50 2000,20
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.nn import functional

from mrsynth.acquisition import condition_vector
from mrsynth.masks import normalise_p99
from mrsynth.models import load_model
from mrsynth.reparam_data import Anatomy, acquire, noise_free, tissue_signals
from mrsynth.simulate import bundled_phantom, load_spec, tissue_names

TISSUES = ("csf", "gm", "wm", "fat", "muscle", "skin", "marrow")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a MapParamNet checkpoint")
    parser.add_argument("--inputs", nargs="+", default=["4500,50", "2000,20"], help="input settings TR,TE (ms)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    spec, names = load_spec(), tissue_names(load_spec())
    model = load_model(args.model)
    network = model.network.eval()
    if not hasattr(network, "maps"):
        raise SystemExit(f"{args.model} is a {model.info.architecture}, not a tissue-map model (MapParamNet)")
    anatomy = Anatomy.from_labels("brainweb", bundled_phantom(), "brainweb", slices=24)
    psf = float(spec["acquisition"]["psf_sigma_voxels"])
    rng = np.random.default_rng(args.seed)
    for setting in args.inputs:
        tr, te = (float(v) for v in setting.split(","))
        x, _ = normalise_p99(
            acquire(noise_free(anatomy.tissues, tissue_signals(tr, te, spec), psf), anatomy.head, rng), anatomy.head
        )
        given = condition_vector(model.info.parameters, {"input_TR": tr, "input_TE": te, "TR": tr, "TE": te})[:2]
        _, ap, lr = x.shape
        multiple = network.size_multiple
        slices = functional.pad(torch.from_numpy(x[:, None].astype(np.float32)), (0, -lr % multiple, 0, -ap % multiple))
        with torch.inference_mode():
            maps = network.maps(slices, torch.tensor([given] * len(x)))[..., :ap, :lr].numpy()
        print(f"input TR {tr:g} ms, TE {te:g} ms: median over each tissue (the table's value)")
        for tissue in TISSUES:
            inside = (anatomy.tissues == names.index(tissue)) & anatomy.head
            if inside.any():
                pd, ff, t1, t2 = (float(np.median(m[inside])) for m in maps.transpose(1, 0, 2, 3))
                true = spec["tissues"][tissue]
                print(
                    f"  {tissue:7s} {int(inside.sum()):7d} voxels: PD {pd:.3f}, fat fraction {ff:.2f} "
                    f"({true['fat_fraction']}), T1 {t1:5.0f} ({true['T1']}), T2 {t2:4.0f} ({true['T2']}) ms"
                )


if __name__ == "__main__":
    main()
