"""Choose a chained Param-to-Param model's residual-transfer weight without the test phantom.

Residual transfer (``reparam_chain.residual_transfer``, applied by ``synthesize`` to a chain built
with ``scripts/chain_reparam.py --residual-transfer W``) adds w times what the chain misses of its
input, ``x - chain(input's own setting)``, scaled by the slope from that rendering to
``chain(target)``. It needs no training, so w (and whether to scale by the slope) is a choice, made
here on validation subjects: each is simulated and scored as ``scripts/eval_reparam.py`` scores the
phantom (24 axial slices, inputs at TR 4.5 s / TE 50 ms, TR 2 s / TE 20 ms and TR 8 s / TE 120 ms
with the same noise seed, 20 targets, PSNR inside the head against the best linear map of the
input). The residual is added after the network, from the chain run without it, so one run
scores every w. As ``synthesize`` does, the input is normalised and the transfer's statistics
(slope, noise, R^2) are taken over the input's body mask (``masks.body_mask``); scores are inside
the head. (Before session 34 the script took them over the head, which the library cannot know:
it chose forms that did worse through ``synthesize``.) The sum is divided by its 99th percentile
in the body (the library's first form) unless ``--keep-scale`` (its form now). Without ``--slope``
the residual is added as it is (a fixed weight); with it, multiplied by the slope of a line fitted
from the chain at the input's setting to the chain at the target, as the library does; ``--shrink``
multiplies that by the share of the residual's variance that is not the input's noise, and
``--local`` filters the noise out of the residual voxel by voxel and weighs it by R^2 of that line,
and ``--ratio`` does that with each voxel's ratio of the two renderings in place of the slope:
the forms ``shrink``, ``local`` and ``ratio`` of ``residual_transfer``. ``--shuffle-seed`` gives
the subject's extra-cranial soft tissues each other's properties, one permutation drawn as training's
``extracranial_shuffle`` draws them (``reparam_data.shuffled_tissues``): a validation subject whose
scalp differs from SynthSeg's, as the phantom's does.

    PYTHONPATH=. python scripts/eval_reparam_transfer.py CHAINED.pt \\
        ../shared/data/synthseg_labels/training_seg_14.nii.gz --weights 0 0.25 0.5 0.75 --json OUT.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from eval_reparam import TES, TRS, _p2p, acquire_inputs, linear_baseline, run_model, scores, test_anatomy

from mrsynth.masks import body_mask, normalise_p99
from mrsynth.models import load_model
from mrsynth.reparam_chain import residual_transfer, signal_share
from mrsynth.reparam_data import DEFAULT_INPUT, grid_settings, noise_free, shuffled_tissues, tissue_signals
from mrsynth.simulate import load_spec

INPUTS = [DEFAULT_INPUT, {"TR": 2000.0, "TE": 20.0}, {"TR": 8000.0, "TE": 120.0}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a chained Param-to-Param model, no residual transfer (file or registry name)")
    parser.add_argument("subject", help="a SynthSeg label map, or brainweb: the test phantom (look, don't choose)")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75])
    parser.add_argument("--slope", action="store_true", help="scale the residual by the fitted slope too")
    parser.add_argument(
        "--shrink", action="store_true", help="with --slope: also by the residual's share that is not noise"
    )
    parser.add_argument(
        "--local", action="store_true", help="with --slope: the residual's noise filtered out voxel by voxel, times R^2"
    )
    parser.add_argument(
        "--ratio", action="store_true", help="with --slope: as --local, with each voxel's ratio in place of the slope"
    )
    parser.add_argument(
        "--keep-scale", action="store_true", help="keep the chain's output scale: no renormalising after the transfer"
    )
    parser.add_argument("--shuffle-seed", type=int, help="permute the extra-cranial tissues' properties (this seed)")
    parser.add_argument("--json", required=True, help="every row, per input and weight")
    args = parser.parse_args()
    if (args.shrink or args.local or args.ratio) and not args.slope:
        parser.error("--shrink, --local and --ratio weigh the slope form: give --slope too")
    if args.shrink + args.local + args.ratio > 1:
        parser.error("give one of --shrink, --local and --ratio")
    form = "ratio" if args.ratio else "local" if args.local else "shrink" if args.shrink else "slope"
    model = load_model(args.model)
    if model.info.normalisation.get("residual_transfer"):
        parser.error(
            f"{args.model} already applies a residual transfer in synthesize, and this script adds its own: "
            "give the chain built without --residual-transfer (scripts/chain_reparam.py)"
        )
    spec = load_spec()
    psf = float(spec["acquisition"]["psf_sigma_voxels"])
    anatomy = test_anatomy(args.subject)
    if args.shuffle_seed is not None:  # tissue t takes tissue order[t]'s properties
        anatomy.tissues = shuffled_tissues(np.random.default_rng(args.shuffle_seed), spec)[anatomy.tissues]
    head = anatomy.head
    rng = np.random.default_rng(1)
    inputs = acquire_inputs(anatomy, INPUTS, rng, spec)
    at_input = [run_model(model, x, _p2p(source, source)) for source, x in zip(INPUTS, inputs, strict=True)]
    bodies = [body_mask(x) for x in inputs]
    normalised = [normalise_p99(x, body)[0] for x, body in zip(inputs, bodies, strict=True)]
    for source, x, own, body in zip(INPUTS, normalised, at_input, bodies, strict=True):
        r = x - own
        share = signal_share(r, body)
        print(
            f"input TR {source['TR']:g} TE {source['TE']:g}: residual sd {np.std(r[body]):.4f}, not noise {share:.3f}"
        )
    rows = []
    for target in grid_settings(TRS, TES):
        clean = noise_free(anatomy.tissues, tissue_signals(target["TR"], target["TE"], spec), psf)
        truth, _ = normalise_p99(clean, head)
        row = {"TR": target["TR"], "TE": target["TE"]}
        for k, (source, x) in enumerate(zip(INPUTS, inputs, strict=True)):
            chain = run_model(model, x, _p2p(source, target))
            scored = {"baseline": scores(linear_baseline(x, truth, head), truth, head)["psnr"]}
            for w in args.weights:
                if not w:
                    pred = chain
                elif args.slope:  # the library's form, as synthesize applies it
                    moved = residual_transfer(chain, at_input[k], normalised[k], bodies[k], w, form)
                    pred = moved if args.keep_scale else normalise_p99(moved, bodies[k])[0]
                else:
                    pred = normalise_p99(chain + w * (normalised[k] - at_input[k]), bodies[k])[0]
                scored[str(w)] = scores(pred, truth, head)["psnr"]
            row[f"input {k}"] = scored
        rows.append(row)
        print(json.dumps(row), flush=True)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(
            {
                "model": args.model,
                "subject": args.subject,
                "slope": args.slope,
                "form": form,
                "keep_scale": args.keep_scale,
                "shuffle_seed": args.shuffle_seed,
                "rows": rows,
            },
            handle,
            indent=1,
        )
    for k, source in enumerate(INPUTS):
        summary = {
            w: (sum(r[f"input {k}"][str(w)] > r[f"input {k}"]["baseline"] for r in rows),
                round(float(np.mean([r[f"input {k}"][str(w)] for r in rows])), 2))
            for w in args.weights
        }  # fmt: skip
        print(f"input TR {source['TR']:g} TE {source['TE']:g}: weight -> (wins of 20, mean PSNR dB) {summary}")


if __name__ == "__main__":
    main()
