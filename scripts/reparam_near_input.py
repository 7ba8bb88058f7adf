"""Where chained Param-to-Param loses next to its input's own contrast: three ways of carrying the input, scored.

The bundled ``reparam-param-sim`` (a first stage to TR 4.5 s / TE 50 ms, then Default-to-Param)
loses to the rescaled input only next to that input's own contrast (docs/other-systems.md). This
diagnostic asks whether the first stage's reading of the input is to blame, or the second stage's
rendering. On one subject (a SynthSeg label map; ``brainweb`` is the test phantom: look, don't
choose), with the inputs and noise of ``scripts/eval_reparam_transfer.py``, it scores at the 20
targets of ``scripts/eval_reparam.py``:

- ``chain``: the chain as it is, C_t (the network run directly on the 24 slices: no flip averaging);
- ``shrink``: version 6's residual transfer, C_t + slope x share x (x - C_in);
- ``refined``: the middle image refined at test time until the second stage, rendered at the
  input's own setting, reproduces the input to its noise level (Adam on the middle image; stopped
  by the discrepancy principle: mean squared residual in the head <= ``noise_sigma(x)^2``), then
  rendered at the target. If the first stage's misreading were the cause, this would remove it;
- ``ratio``: the input times the chain's voxel-wise contrast ratio, x C_t / C_in (C_in floored at
  0.05): the input carried whole, through the chain's local slope instead of one global one;
- ``shrink, oracle`` and ``refined, oracle``: the same under the best global linear map fitted on
  the truth, as the baseline is, which says whether a global scale error is the cause.

    PYTHONPATH=. python scripts/reparam_near_input.py ../shared/data/synthseg_labels/training_seg_14.nii.gz \\
        --json OUT.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from eval_reparam import TES, TRS, acquire_inputs, linear_baseline, scores, test_anatomy
from eval_reparam_transfer import INPUTS
from torch.nn import functional

from mrsynth.acquisition import condition_vector
from mrsynth.masks import normalise_p99
from mrsynth.models import load_model
from mrsynth.reparam_chain import noise_sigma, residual_transfer
from mrsynth.reparam_data import grid_settings, noise_free, tissue_signals
from mrsynth.simulate import load_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("subject", help="a SynthSeg label map, or brainweb")
    parser.add_argument("--model", default="reparam-param-sim", help="a chained Param-to-Param model")
    parser.add_argument("--steps", type=int, default=200, help="at most this many refinement steps")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam's step on the middle image")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = load_spec()
    psf = float(spec["acquisition"]["psf_sigma_voxels"])
    anatomy = test_anatomy(args.subject)
    head = anatomy.head
    inputs = acquire_inputs(anatomy, INPUTS, np.random.default_rng(1), spec)
    model = load_model(args.model)
    if model.info.architecture != "ChainedParamNet":
        parser.error(
            f"{args.model} is a {model.info.architecture}, not a chain: for an ensemble of chains give one member, "
            "written by 'mrsynth ensemble MODEL --member K --output MEMBER.pt'"
        )
    network, declared = model.network.eval(), model.info.parameters
    for weight in network.parameters():
        weight.requires_grad_(False)
    slices, height, width = head.shape
    multiple = network.size_multiple

    def tensor(array: np.ndarray) -> torch.Tensor:
        padded = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[:, None]
        return functional.pad(padded, (0, (-width) % multiple, 0, (-height) % multiple))

    def conditions(source: dict, target: dict) -> torch.Tensor:
        values = {"input_TR": source["TR"], "input_TE": source["TE"], "TR": target["TR"], "TE": target["TE"]}
        return torch.tensor([condition_vector(declared, values)], dtype=torch.float32).expand(slices, -1)

    def array(y: torch.Tensor) -> np.ndarray:
        return y.detach()[:, 0, :height, :width].numpy()

    mask = tensor(head.astype(np.float32))
    report = {"model": args.model, "subject": args.subject, "inputs": []}
    for source, raw in zip(INPUTS, inputs, strict=True):
        x = normalise_p99(raw, head)[0]
        xt, own = tensor(x), conditions(source, source)
        with torch.no_grad():
            middle = network.first(xt, torch.cat([own[:, :2], network.via.expand(slices, -1)], 1))
        refined = middle.clone().requires_grad_(True)
        optimiser = torch.optim.Adam([refined], lr=args.lr)
        limit = noise_sigma(x, head) ** 2
        for step in range(args.steps + 1):
            loss = ((network.second(refined, own[:, 2:]) - xt) ** 2 * mask).sum() / mask.sum()
            if loss.item() <= limit or step == args.steps:
                break
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            at_input = array(network.second(middle, own[:, 2:]))
        rows = []
        for target in grid_settings(TRS, TES):
            clean = noise_free(anatomy.tissues, tissue_signals(target["TR"], target["TE"], spec), psf)
            truth = normalise_p99(clean, head)[0]
            with torch.no_grad():
                chain = array(network.second(middle, conditions(source, target)[:, 2:]))
                from_refined = array(network.second(refined, conditions(source, target)[:, 2:]))
            shrink = residual_transfer(chain, at_input, x, head, 1.0, "shrink")
            predictions = {
                "baseline": linear_baseline(raw, truth, head),
                "chain": chain,
                "shrink": shrink,
                "refined": from_refined,
                "ratio": x * chain / np.maximum(at_input, 0.05),
                "shrink, oracle": linear_baseline(shrink, truth, head),
                "refined, oracle": linear_baseline(from_refined, truth, head),
            }
            rows.append(target | {name: scores(p, truth, head)["psnr"] for name, p in predictions.items()})
        entry = {"input": source, "refinement_steps": step, "loss": loss.item(), "noise_variance": limit, "rows": rows}
        report["inputs"].append(entry)
        print(f"input TR {source['TR']:g} TE {source['TE']:g}: refined in {step} steps to {loss.item():.5f} "
              f"(noise {limit:.5f}); wins of 20 and mean PSNR (dB):")  # fmt: skip
        for name in [n for n in rows[0] if n not in ("TR", "TE", "baseline")]:
            wins = sum(r[name] > r["baseline"] for r in rows)
            print(f"  {name}: {wins}, {np.mean([r[name] for r in rows]):.2f}", flush=True)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
