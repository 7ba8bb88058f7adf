"""Where a re-parameterisation model goes wrong on the phantom: medians of input, truth and output per tissue.

The held-out BrainWeb phantom is acquired as ``scripts/eval_reparam.py`` does (24 axial slices, SNR 30,
seed 1) at each input setting given and run through ``synthesize`` to the target setting. The output
is scored (PSNR inside the head, beside the input under the best global linear map, as in
``eval_reparam``), and each tissue's median is printed for the input, the noise-free truth (both
divided by their 99th percentile inside the head) and the output, and the tissue's share of the
output's squared error inside the head, with the tissue's voxel count in the phantom (or the
SynthSeg ``--subject`` tested instead) and, for comparison, in the training subjects (SynthSeg
label maps, the same 24 slices):

    PYTHONPATH=. python scripts/reparam_tissue_medians.py --model reparam-param-sim --inputs 4500,50 2000,20 \
        --target 4500,50 --training ../shared/data/synthseg_labels/training_seg_0[1-3].nii.gz

A Default-to-Param model takes the output setting only (give ``--inputs 4500,50``, its input's).
"""

from __future__ import annotations

import argparse

import numpy as np
from eval_reparam import linear_baseline, run_model, scores, setting, test_anatomy

from mrsynth.masks import normalise_p99
from mrsynth.models import load_model
from mrsynth.reparam_data import Anatomy, acquire, noise_free, tissue_signals
from mrsynth.simulate import load_spec, tissue_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="reparam-param-sim", help="a re-parameterisation model (name or file)")
    parser.add_argument("--inputs", nargs="+", default=["4500,50", "2000,20"], help="input settings TR,TE (ms)")
    parser.add_argument("--target", default="4500,50", help="output setting TR,TE (ms)")
    parser.add_argument("--training", nargs="*", default=[], help="SynthSeg label maps to count tissues in")
    parser.add_argument("--subject", help="a SynthSeg label map to test on instead of the phantom")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    spec = load_spec()
    names = tissue_names(spec)
    psf = float(spec["acquisition"]["psf_sigma_voxels"])
    model = load_model(args.model)
    anatomy = test_anatomy(args.subject or "brainweb")
    head = anatomy.head
    counts = {"tested": np.bincount(anatomy.tissues[head], minlength=len(names))}
    for path in args.training:
        other = Anatomy.from_file(path, "synthseg", 24)
        counts[path.rsplit("/", 1)[-1].split(".")[0]] = np.bincount(other.tissues[other.head], minlength=len(names))
    print("voxels per tissue inside the head, " + ", ".join(counts))
    for index, name in enumerate(names):
        print(f"  {name:10s} " + " ".join(f"{int(c[index]):7d}" for c in counts.values()))
    target = setting(args.target)
    truth, _ = normalise_p99(noise_free(anatomy.tissues, tissue_signals(target["TR"], target["TE"], spec), psf), head)
    rng = np.random.default_rng(args.seed)
    for text in args.inputs:
        source = setting(text)
        x = acquire(noise_free(anatomy.tissues, tissue_signals(source["TR"], source["TE"], spec), psf), head, rng)
        values = {"input_TR": source["TR"], "input_TE": source["TE"]} | target
        values = {name: value for name, value in values.items() if name in model.info.parameters}
        out = run_model(model, x, values)
        rescaled = scores(linear_baseline(x, truth, head), truth, head)["psnr"]
        x = normalise_p99(x, head)[0]
        print(f"input TR {source['TR']:g} ms, TE {source['TE']:g} ms -> TR {target['TR']:g} ms, TE {target['TE']:g} ms:"
              f" PSNR {scores(out, truth, head)['psnr']:.2f} dB (the input rescaled: {rescaled:.2f} dB);"
              " median input / truth / output, share of the squared error")  # fmt: skip
        squared = (out.astype(np.float64) - truth) ** 2
        for index, name in enumerate(names):
            inside = (anatomy.tissues == index) & head
            if inside.sum() >= 1000:
                medians = [float(np.median(a[inside])) for a in (x, truth, out)]
                share = float(squared[inside].sum() / squared[head].sum())
                print(f"  {name:10s} {int(inside.sum()):7d} voxels: " + " / ".join(f"{m:.3f}" for m in medians)
                      + f", {share:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
