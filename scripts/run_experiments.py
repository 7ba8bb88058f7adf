"""Paper 000's experiments reproduced on the simulator, where the true high-resolution TSE is known.

For each target (``tse_t1`` as in the paper, the harder ``tse_t2``) and each configuration of Table IV
and Fig. 7 (HighResNet / U-Net, L1 / L1 + 0.1 MIND, High-to-low / Low-to-low), models are trained on
simulated subjects, repeated with different seeds, and scored on held-out subjects two ways: sTSE_LR
against the thick TSE (all the paper could do) and sTSE_HR against the true high-resolution TSE
(Low-to-low output upsampled by cubic B-spline). Then: the trained downsampling kernel next to the
simulator's slice profile (Table A1), the slice-dependent artifact at stride (18, 18, 4) vs
(18, 18, 1) (Fig. 6/8), paired t-tests between configurations, and the scale actually used. Every
number in the report comes from this run; the command line is written into it.

    python scripts/run_experiments.py --cases 'runs/sim/seg_*' --test-cases 2 --iterations 2000 \\
        --repetitions 3 --out-dir runs/experiments --report docs/experiments.md
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from mrsynth.artifacts import slice_periodicity
from mrsynth.baselines import bspline_upsample
from mrsynth.checkpoint import load_checkpoint
from mrsynth.data import Case
from mrsynth.evaluation import evaluate
from mrsynth.files import atomic_path
from mrsynth.inference import InferenceOptions
from mrsynth.kernel_training import fit_kernel, frozen_outputs
from mrsynth.lowlow import thick_images
from mrsynth.significance import paired_t_test
from mrsynth.synthesis import synthesize
from mrsynth.training import load_config, train
from mrsynth.volume_io import to_paper

TARGETS = {"tse_t1": ("TSE_thick", "TSE_HR", "TSE_T1w"), "tse_t2": ("TSE_T2_thick", "TSE_T2_HR", "TSE_T2w")}
CONFIGURATIONS = {  # name: (architecture, mind weight, approach)
    "HighResNet L1": ("HighResNet", 0.0, "high-to-low"),
    "HighResNet L1+0.1MIND": ("HighResNet", 0.1, "high-to-low"),
    "U-Net L1": ("UNet", 0.0, "high-to-low"),
    "U-Net L1+0.1MIND": ("UNet", 0.1, "high-to-low"),
    "HighResNet L1, Low-to-low": ("HighResNet", 0.0, "low-to-low"),
}
METRICS = ("mae", "mi", "ssim", "psnr")


def read(case: Path, name: str) -> sitk.Image:
    return sitk.ReadImage(str(next(case.glob(f"{name}.*"))), sitk.sitkFloat32)


def train_one(args: argparse.Namespace, train_cases: list[Path], val_case: Path, target: str, name: str, seed: int):
    architecture, mind, approach = CONFIGURATIONS[name]
    thick, _, contrast = TARGETS[target]
    model: dict[str, Any] = {"architecture": architecture, "width": args.width, "blocks_per_stage": 1}
    if architecture == "UNet":
        model |= {"levels": 3, "batch_norm": False, "width": max(2, args.width)}
    patch = [56, 56, 8] if approach == "low-to-low" else [56, 56, 32]
    config = load_config(
        None,
        {
            "name": f"{target}-{name}",
            "output_contrast": contrast,
            "data": {"train": [str(c) for c in train_cases], "val": [str(val_case)], "target": thick},
            "model": model,
            "approach": approach,
            "mind_weight": mind,
            "patch": patch,
            "batch_size": args.batch_size,
            "iterations": args.iterations,
            "learning_rate": 1e-3,
            "lr_schedule": "cosine",
            "checkpoint_every": 100,
            "seed": seed,
            "device": args.device,
        },
    )
    run_dir = Path(args.out_dir) / target / f"{name.replace(' ', '_').replace(',', '')}" / f"seed{seed}"
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    if (run_dir / "model.pt").is_file():
        return load_checkpoint(run_dir / "model.pt")
    resume = run_dir if (run_dir / "checkpoints" / "last.pt").is_file() else None
    return load_checkpoint(train(config, None if resume else run_dir, resume=resume))


def score(model, case: Path, target: str, options: InferenceOptions) -> dict[str, Any]:
    """Metrics of one model on one held-out subject: LR vs thick TSE, HR vs the true TSE."""
    thick_name, hr_name, _ = TARGETS[target]
    inputs = [read(case, n) for n in model.info.inputs]
    head, bone = read(case, "head_mask"), read(case, "bone_mask")
    truth_hr, truth_thick = read(case, hr_name), read(case, thick_name)
    if model.info.approach == "low-to-low":
        result = synthesize(model, thick_images(inputs, "weighted"), options=options, flip_average=False)
        lr, hr = result.hr, bspline_upsample(result.hr, truth_hr)
    else:
        result = synthesize(model, inputs, options=options, flip_average=False)
        lr, hr = result.lr, result.hr
    thick_head = sitk.Resample(head, truth_thick, sitk.Transform(), sitk.sitkNearestNeighbor)
    thick_bone = sitk.Resample(bone, truth_thick, sitk.Transform(), sitk.sitkNearestNeighbor)

    def some(mask: sitk.Image) -> sitk.Image | None:  # a crop may hold no bone
        return mask if sitk.GetArrayViewFromImage(mask).any() else None

    return {
        "lr": evaluate(lr, truth_thick, thick_head, some(thick_bone)).metrics,
        "hr": evaluate(hr, truth_hr, head, some(bone)).metrics,
        "hr_image": hr,
        "head": head,
    }


def table(rows: dict[str, dict[str, list[float]]], title: str) -> list[str]:
    keys = [f"{region} {m}" for region in ("body", "bone") for m in METRICS]
    lines = [
        f"**{title}** (mean ± sd over held-out subjects x repetitions)",
        "",
        "| configuration | " + " | ".join(keys) + " |",
    ]
    lines.append("|---" * (len(keys) + 1) + "|")
    for name, values in rows.items():
        cells = [f"{np.nanmean(values[k]):.4f} ± {np.nanstd(values[k]):.4f}" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="runs/sim/seg_*", help="simulated case folders (glob)")
    parser.add_argument("--test-cases", type=int, default=2, help="the last N cases are held out for testing")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--configurations", nargs="+", default=list(CONFIGURATIONS), choices=list(CONFIGURATIONS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out-dir", default="runs/experiments")
    parser.add_argument("--report", default="docs/experiments.md")
    args = parser.parse_args()

    started = time.time()
    cases = sorted(Path(p) for p in glob.glob(args.cases))
    if len(cases) < args.test_cases + 2:
        sys.exit(f"need at least {args.test_cases + 2} cases, found {len(cases)} for {args.cases}")
    test, val, train_cases = cases[-args.test_cases :], cases[-args.test_cases - 1], cases[: -args.test_cases - 1]
    sliding = InferenceOptions.preset("paper")
    report = [
        "# Paper 000's experiments on the simulator",
        "",
        f"Command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`",
        "",
        f"Scale: {len(train_cases)} training subjects, 1 validation, {len(test)} held-out test subjects "
        f"({', '.join(c.name for c in test)}); {args.iterations} iterations of batch {args.batch_size} "
        f"(= {args.iterations * args.batch_size / 800:.1f} epochs of 800 patches); width {args.width}; "
        f"{args.repetitions} repetitions. Hardware: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, device {args.device} "
        f"({'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}). The paper: 17 training "
        "patients, 1000 epochs, 5 repetitions, on GPUs.",
        "",
    ]
    raw: dict[str, Any] = {}
    for target in args.targets:
        results: dict[str, dict[str, dict[str, list[float]]]] = {"lr": {}, "hr": {}}
        per_run: dict[str, list[float]] = {}
        artifacts: dict[str, dict[str, list[float]]] = {}
        for name, seed in itertools.product(args.configurations, range(args.repetitions)):
            model = train_one(args, train_cases, val, target, name, seed)
            for case in test:
                scores = score(model, case, target, sliding)
                for kind in ("lr", "hr"):
                    bucket = results[kind].setdefault(name, {})
                    for region, metric in itertools.product(("body", "bone"), METRICS):
                        value = scores[kind].get(region, {}).get(metric, float("nan"))
                        bucket.setdefault(f"{region} {metric}", []).append(value)
                per_run.setdefault(name, []).append(scores["hr"]["body"]["ssim"])
                if model.info.approach == "high-to-low":
                    head = to_paper(scores["head"]) > 0
                    stride1 = InferenceOptions.preset("smooth")
                    smooth = synthesize(model, [read(case, n) for n in model.info.inputs], options=stride1,
                                        flip_average=False).hr  # fmt: skip
                    measure = artifacts.setdefault(name, {"18 18 4": [], "18 18 1": []})
                    measure["18 18 4"].append(slice_periodicity(to_paper(scores["hr_image"]), head))
                    measure["18 18 1"].append(slice_periodicity(to_paper(smooth), head))
        report += [f"## Target `{target}`", ""]
        report += table(results["lr"], "sTSE_LR against the thick TSE (what the paper measured)")
        report += table(results["hr"], "sTSE_HR against the true high-resolution TSE (what the paper could not)")
        report += ["**Paired t-tests** (SSIM of sTSE_HR in the body, pairs = subjects x repetitions)", ""]
        report += ["| a | b | mean a - b | p |", "|---|---|---|---|"]
        names = list(per_run)
        for a, b in itertools.combinations(names, 2):
            test_result = paired_t_test(per_run[a], per_run[b])
            report.append(f"| {a} | {b} | {test_result.mean_difference:+.4f} | {test_result.p_value:.3g} |")
        report += ["", "**Slice-dependent artifact**: share of the LR profile's power at a period of 4 slices "
                   "(`mrsynth.artifacts.slice_periodicity`), mean over subjects x repetitions", ""]  # fmt: skip
        report += ["| configuration | stride 18 18 4 | stride 18 18 1 |", "|---|---|---|"]
        for name, measure in artifacts.items():
            report.append(f"| {name} | {np.mean(measure['18 18 4']):.4f} | {np.mean(measure['18 18 1']):.4f} |")
        report.append("")
        kernel_model = train_one(args, train_cases, val, target, "HighResNet L1", 0)
        cases_loaded = [
            Case.load(c, kernel_model.info.inputs, TARGETS[target][0], "head_mask", kernel_model.info.patch)
            for c in train_cases
        ]
        outputs, targets_ = frozen_outputs(kernel_model, cases_loaded, 0, 64, 0, torch.device("cpu"))
        kernel = fit_kernel(outputs, targets_, iterations=20000)
        profile = json.loads((train_cases[0] / "simulation.json").read_text())["slice_profile"]
        distance = float(np.abs(np.asarray(kernel) - np.asarray(profile)).sum())
        report += ["**Table A1**: the downsampling kernel trained with HighResNet L1 frozen (offset 0, from "
                   "[1/2, 1/2, 0, 0], Adam 1e-4, 20000 steps on 64 training patches)", ""]  # fmt: skip
        report += ["| | w0 | w1 | w2 | w3 |", "|---|---|---|---|---|"]
        report.append("| trained | " + " | ".join(f"{w:.4f}" for w in kernel) + " |")
        report.append("| simulator's slice profile | " + " | ".join(f"{w:.4f}" for w in profile) + " |")
        report += ["", f"Sum of absolute differences: {distance:.4f}", ""]
        raw[target] = {"lr": results["lr"], "hr": results["hr"], "kernel": kernel, "artifacts": artifacts}
    report.append(f"Wall time: {(time.time() - started) / 3600:.1f} h.")
    with atomic_path(args.report) as tmp:
        tmp.write_text("\n".join(report) + "\n", encoding="utf-8")
    with atomic_path(Path(args.out_dir) / "experiments.json") as tmp:
        tmp.write_text(json.dumps(raw, indent=1, default=float), encoding="utf-8")
    print(f"wrote {args.report}")


if __name__ == "__main__":
    main()
