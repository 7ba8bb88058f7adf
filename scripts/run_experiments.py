"""Paper 000's experiments reproduced on the simulator, where the true high-resolution TSE is known.

For each target (``tse_t1`` as in the paper, the harder ``tse_t2``) and each configuration of Table IV
and Fig. 7 (HighResNet / U-Net, L1 / L1 + 0.1 MIND, High-to-low / Low-to-low; and High-to-low under the
aligned kernel scheme of ``mrsynth.highlow``, which the paper did not have), models are trained on
simulated subjects, repeated with different seeds, and scored on held-out subjects two ways: sTSE_LR
against the thick TSE (all the paper could do) and sTSE_HR against the true high-resolution TSE
(Low-to-low output upsampled by cubic B-spline), next to the two baselines a synthesized image must
beat. Then: the downsampling kernel trained with each HighResNet frozen, on the held-out subjects,
next to the simulator's slice profile and to kernels fitted to the true HR TSE, sharp and blurred
(Table A1); the slice-dependent artifact at stride (18, 18, 4) vs (18, 18, 1) (Fig. 6/8); paired
t-tests between configurations; and longer-trained models (``--models``) on the same held-out subjects.
Every number in the report comes from this run; the command line is written into it.

Each run's model and scores are cached in its folder, so a stopped run continues where it stopped, and
targets can be run in parallel processes (``--targets tse_t1`` and ``--targets tse_t2``, one thread
each) before one final call with all targets writes the report from the caches:

    python scripts/run_experiments.py --cases 'runs/sim/seg_*' --test-cases 2 --iterations 2000 \\
        --repetitions 3 --out-dir runs/experiments --report docs/experiments.md

The report opens with its command line and closes with its wall time; ``docs/experiments.md`` adds, by
hand below that, a reading of the numbers: carry it over when the report is regenerated.

Scoring uses the paper's Gaussian-weighted sliding windows at half the patch as stride (28, 28, 16 for
56x56x32 patches): the paper's stride (18, 18, 4) takes about 6 minutes per subject and model on a
2-core CPU, and the engine's exact full-context mode needs a network that reports its receptive field,
which the U-Net (whose pooling grid moves with the tile) does not. The stride comparison, which is
about the sliding windows, is measured at the paper's strides on a crop of each held-out subject.
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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch
from scipy.ndimage import gaussian_filter1d

from mrsynth.artifacts import slice_periodicity
from mrsynth.baselines import best_linear_map, bspline_upsample
from mrsynth.checkpoint import LoadedModel, load_checkpoint
from mrsynth.data import Case, PatchSampler
from mrsynth.evaluation import evaluate
from mrsynth.files import atomic_path
from mrsynth.highlow import SLICE_FACTOR, estimate_pair_start
from mrsynth.inference import InferenceOptions
from mrsynth.kernel_training import fit_kernel, frozen_outputs
from mrsynth.lowlow import thick_images
from mrsynth.models import load_model
from mrsynth.models.registry import registry
from mrsynth.significance import paired_t_test
from mrsynth.simulate import target_volumes
from mrsynth.synthesis import synthesize
from mrsynth.training import load_config, train
from mrsynth.volume_io import from_paper, paper_index_axis, to_paper

TARGETS = {"tse_t1": "TSE_T1w", "tse_t2": "TSE_T2w"}  # target -> output contrast
CONFIGURATIONS = {  # name: (architecture, mind weight, approach, High-to-low kernel scheme)
    "HighResNet L1": ("HighResNet", 0.0, "high-to-low", "fig3"),
    "HighResNet L1+0.1MIND": ("HighResNet", 0.1, "high-to-low", "fig3"),
    "U-Net L1": ("UNet", 0.0, "high-to-low", "fig3"),
    "U-Net L1+0.1MIND": ("UNet", 0.1, "high-to-low", "fig3"),
    "HighResNet L1, Low-to-low": ("HighResNet", 0.0, "low-to-low", "fig3"),
    "HighResNet L1, aligned kernels": ("HighResNet", 0.0, "high-to-low", "aligned"),
}
BASELINES = ("thick TSE, cubic B-spline", "best linear map of GE (fitted on the truth)")
METRICS = ("mae", "mi", "ssim", "psnr")
ARTIFACT_CROP = (80, 80, 64)  # SI AP LR voxels around the head's centre; LR start on a thick-slice boundary
STRIDES = {"18 18 4": (18, 18, 4), "18 18 1": (18, 18, 1)}
KERNEL_PATCHES, KERNEL_STEPS = 64, 10000


def read(case: Path, name: str) -> sitk.Image:
    return sitk.ReadImage(str(next(case.glob(f"{name}.*"))), sitk.sitkFloat32)


def run_folder(args: argparse.Namespace, target: str, name: str, seed: int) -> Path:
    return Path(args.out_dir) / target / name.replace(" ", "_").replace(",", "") / f"seed{seed}"


def train_one(
    args: argparse.Namespace, train_cases: list[Path], val_case: Path, target: str, name: str, seed: int
) -> Path:
    """The exported model of one configuration and seed, trained (or resumed) if it is not there yet."""
    architecture, mind, approach, scheme = CONFIGURATIONS[name]
    thick, _ = target_volumes(TARGETS[target])
    model: dict[str, Any] = {"architecture": architecture, "width": args.width, "blocks_per_stage": 1}
    if architecture == "UNet":
        model = {"architecture": architecture, "width": args.width, "levels": 3, "batch_norm": False}
    config = load_config(
        None,
        {
            "name": f"{target}-{name}",
            "output_contrast": TARGETS[target],
            "data": {"train": [str(c) for c in train_cases], "val": [str(val_case)], "target": thick},
            "model": model,
            "approach": approach,
            "kernel_scheme": scheme,
            "mind_weight": mind,
            "patch": [56, 56, 8] if approach == "low-to-low" else [56, 56, 32],
            "batch_size": args.batch_size,
            "iterations": args.iterations,
            "learning_rate": 1e-3,
            "lr_schedule": "cosine",
            "epoch_patches": 100,
            "val_patches": 16,
            "checkpoint_every": 50,
            "seed": seed,
            "device": args.device,
            "threads": args.threads,
        },
    )
    folder = run_folder(args, target, name, seed)
    if (folder / "model.pt").is_file():
        return folder / "model.pt"
    folder.parent.mkdir(parents=True, exist_ok=True)
    resume = folder if (folder / "checkpoints" / "last.pt").is_file() else None
    return train(config, None if resume else folder, resume=resume)


def model_key(model: str) -> str:
    """A cache name for a ``--models`` entry: the checkpoint's run folder and stem (runs/x/model.pt ->
    x-model, so that two runs' model.pt files do not share a cache), or the registry name with the
    start of its sha256 (a re-bundled model gets a new cache)."""
    entries = registry()
    if model in entries:
        return f"{model}-{entries[model].sha256[:8]}"
    path = Path(model)
    return f"{path.parent.name}-{path.stem}"


def predict(model: LoadedModel, case: Path) -> tuple[sitk.Image, sitk.Image]:
    """(sTSE_LR on the thick grid, sTSE_HR on the high-resolution grid) of one held-out subject."""
    _, truth = target_volumes(model.info.output)
    options = InferenceOptions(mode="sliding", stride=tuple(p // 2 for p in model.info.patch))
    inputs = [read(case, n) for n in model.info.inputs]
    if model.info.approach == "low-to-low":
        result = synthesize(model, thick_images(inputs, "weighted"), options=options, flip_average=False)
        return result.hr, bspline_upsample(result.hr, read(case, truth))
    result = synthesize(model, inputs, options=options, flip_average=False)
    return result.lr, result.hr


def scores(images: dict[str, sitk.Image], case: Path, contrast: str, grid: str) -> dict[str, dict]:
    """Metrics of each image against the thick target (``grid`` 'lr') or the true HR TSE ('hr')."""
    thick, truth = target_volumes(contrast)
    reference = read(case, thick if grid == "lr" else truth)
    head, bone = read(case, "head_mask"), read(case, "bone_mask")
    if grid == "lr":
        head, bone = (sitk.Resample(m, reference, sitk.Transform(), sitk.sitkNearestNeighbor) for m in (head, bone))
    some_bone = bone if sitk.GetArrayViewFromImage(bone).any() else None
    return {name: evaluate(image, reference, head, some_bone).metrics for name, image in images.items()}


def baselines(case: Path, contrast: str) -> dict[str, sitk.Image]:
    """The acquired thick TSE upsampled by cubic B-spline, and the best global linear map of the GE echoes."""
    thick, truth_name = target_volumes(contrast)
    truth, head = read(case, truth_name), to_paper(read(case, "head_mask")) > 0
    echoes = [to_paper(read(case, n)) for n in ("GE_aOP", "GE_aIP")]
    return {
        BASELINES[0]: bspline_upsample(read(case, thick), truth),
        BASELINES[1]: from_paper(best_linear_map(echoes, to_paper(truth), head), truth),
    }


def baseline_scores(test: list[Path], contrast: str) -> dict:
    return {case.name: scores(baselines(case, contrast), case, contrast, "hr") for case in test}


def crop(image: sitk.Image, head: sitk.Image) -> sitk.Image:
    """ARTIFACT_CROP voxels around the head's centre, the LR start on a thick-slice boundary."""
    centre = np.round(np.argwhere(to_paper(head) > 0).mean(axis=0)).astype(int)
    index, size = [0, 0, 0], list(image.GetSize())
    for paper_axis, length in enumerate(ARTIFACT_CROP):
        axis = paper_index_axis(image, paper_axis)
        start = int(np.clip(centre[paper_axis] - length // 2, 0, image.GetSize()[axis] - length))
        if paper_axis == 2:
            start -= start % SLICE_FACTOR
        index[axis], size[axis] = start, length
    return sitk.RegionOfInterest(image, size, index)


def slice_artifact(model: LoadedModel, case: Path) -> dict[str, float]:
    """Period-4 share of sTSE_HR's LR profile on a crop, at each sliding stride (Fig. 6/8)."""
    head = read(case, "head_mask")
    inputs = [crop(read(case, n), head) for n in model.info.inputs]
    mask = crop(head, head)
    inside = to_paper(mask) > 0
    result = {}
    for label, stride in STRIDES.items():
        options = InferenceOptions(mode="sliding", stride=stride)
        hr = synthesize(model, inputs, options=options, mask=mask, flip_average=False).hr
        result[label] = slice_periodicity(to_paper(hr), inside)
    return result


def trained_kernel(model: LoadedModel, cases: list[Path]) -> list[float]:
    """The offset-0 kernel fitted with the network frozen (section II.E.6) on ``cases``."""
    thick, _ = target_volumes(model.info.output)
    loaded = [Case.load(c, model.info.inputs, thick, "head_mask", model.info.patch) for c in cases]
    outputs, targets = frozen_outputs(model, loaded, 0, KERNEL_PATCHES, 0, torch.device("cpu"))
    return list(fit_kernel(outputs, targets, iterations=KERNEL_STEPS))


def truth_kernels(test: list[Path], contrast: str) -> dict[str, list[float]]:
    """Kernels fitted, as in ``trained_kernel``, to the true HR TSE itself and to it blurred along LR.

    A check on the fit (the truth must give back the slice profile) and on how a kernel answers an
    sTSE_HR smoother along LR than the truth: it narrows onto the central slices.
    """
    thick, truth = target_volumes(contrast)
    loaded = [Case.load(c, [truth], thick, "head_mask", (56, 56, 32)) for c in test]
    pair_start = int(np.bincount([estimate_pair_start(c.inputs[-1], c.target, c.mask) for c in loaded]).argmax())
    result = {}
    for sigma in (0.0, 0.5, 1.0):
        cases = [replace(c, inputs=gaussian_filter1d(c.inputs, sigma, axis=-1) if sigma else c.inputs) for c in loaded]
        sampler = PatchSampler(cases, (56, 56, 32), pair_start, np.random.default_rng(0), False, fixed_offset=0)
        pairs = [sampler.draw(1)[:2] for _ in range(KERNEL_PATCHES)]
        outputs = torch.from_numpy(np.concatenate([x for x, _ in pairs]))
        targets = torch.from_numpy(np.concatenate([y for _, y in pairs]))
        label = "true HR TSE" + (f", Gaussian blur sigma {sigma} voxel along LR" if sigma else "")
        result[label] = list(fit_kernel(outputs, targets, iterations=KERNEL_STEPS))
    return result


def evaluate_model(model: LoadedModel, test: list[Path], artifacts: bool) -> dict:
    """Scores, slice artifact and (High-to-low) trained kernel of one model on the held-out cases."""
    record: dict[str, Any] = {"lr": {}, "hr": {}, "artifact": {}}
    for case in test:
        lr, hr = predict(model, case)
        record["lr"][case.name] = scores({"model": lr}, case, model.info.output, "lr")["model"]
        record["hr"][case.name] = scores({"model": hr}, case, model.info.output, "hr")["model"]
        if artifacts and model.info.approach == "high-to-low":
            record["artifact"][case.name] = slice_artifact(model, case)
    if model.info.approach == "high-to-low":
        record["kernel"] = trained_kernel(model, test)
    return record


def cached(path: Path, compute: Callable[..., dict], *arguments: Any) -> dict:
    """``compute(*arguments)``'s JSON record, read from ``path`` if an earlier run wrote it."""
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)  # before the work, so that a missing folder cannot lose it
    record = compute(*arguments)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=float), encoding="utf-8")
    return record


def training_seconds(folder: Path) -> float:
    """Wall time of a run from its log, whose clock starts again at each resume."""
    seconds = [float(line.split(",")[-1]) for line in (folder / "log.csv").read_text().strip().splitlines()[1:]]
    return sum(a for a, b in zip(seconds, seconds[1:] + [0.0]) if b < a)


def table(rows: dict[str, dict[str, list[float]]], title: str, regions: tuple[str, ...]) -> list[str]:
    keys = [f"{region} {m}" for region in regions for m in METRICS]
    lines = [f"**{title}**", "", "| image | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, values in rows.items():
        cells = [f"{np.nanmean(values[k]):.4f} ± {np.nanstd(values[k]):.4f}" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def collect(bucket: dict[str, list[float]], metrics: dict) -> None:
    for region, metric in itertools.product(("body", "bone"), METRICS):
        bucket.setdefault(f"{region} {metric}", []).append(metrics.get(region, {}).get(metric, float("nan")))


def kernel_row(label: str, kernel: list[float], profile: list[float]) -> str:
    distance = float(np.abs(np.asarray(kernel) - np.asarray(profile)).sum())
    return f"| {label} | " + " | ".join(f"{w:.4f}" for w in kernel) + f" | {distance:.4f} |"


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
    parser.add_argument("--report-only", action="store_true", help="train nothing: report the runs already trained")
    parser.add_argument(
        "--models",
        nargs="+",
        default=[],
        metavar="TARGET=MODEL",
        help="also score these longer-trained models (registry name or checkpoint), e.g. tse_t1=gre-to-tse-sim",
    )
    parser.add_argument(
        "--kernel-cases",
        nargs="+",
        default=[],
        metavar="CASE",
        help="also fit the truth's and each --models model's kernel on these cases (unseen, e.g. runs/sim/brainweb)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--out-dir", default="runs/experiments")
    parser.add_argument("--report", default="docs/experiments.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    started = time.time()
    cases = sorted(Path(p) for p in glob.glob(args.cases))
    if len(cases) < args.test_cases + 2:
        sys.exit(f"need at least {args.test_cases + 2} cases, found {len(cases)} for {args.cases}")
    test, val, train_cases = cases[-args.test_cases :], cases[-args.test_cases - 1], cases[: -args.test_cases - 1]
    profile = json.loads((train_cases[0] / "simulation.json").read_text())["slice_profile"]
    patches = args.iterations * args.batch_size
    report = [
        "# Paper 000's experiments on the simulator",
        "",
        f"Command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`",
        "",
        f"Scale: {len(train_cases)} training subjects ({train_cases[0].name} to {train_cases[-1].name}), "
        f"1 validation subject ({val.name}), {len(test)} held-out test subjects ({', '.join(c.name for c in test)}); "
        f"{args.iterations} iterations of batch {args.batch_size} = {patches} training patches "
        f"(= {patches / 800:.2f} of the paper's 800-patch epochs) per model; width {args.width}, one residual block "
        f"per stage (HighResNet) or 3 levels (U-Net); {args.repetitions} repetition(s) with different seeds. "
        f"Hardware: {platform.machine()} CPU, {torch.get_num_threads()} thread(s) per process, device "
        f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}. "
        "The paper: 17 training patients, up to 1000 epochs of 800 patches, 5 repetitions, on GPUs. "
        "Scoring: Gaussian-weighted sliding windows at half the patch as stride, single pass (no flip "
        "averaging); images divided by their 99th percentile in the head; SSIM window 21x21x3 (SI AP LR); "
        "'body' is the head mask, 'bone' the bone mask.",
        "",
    ]
    raw: dict[str, Any] = {}
    unseen = [Path(c) for c in args.kernel_cases]  # --kernel-cases, named in the report by their folders
    names = "+".join(c.name for c in unseen)
    for target in args.targets:
        contrast = TARGETS[target]
        lr_rows: dict[str, dict[str, list[float]]] = {}
        hr_rows: dict[str, dict[str, list[float]]] = {}
        ssim: dict[str, list[float]] = {}
        artifacts: dict[str, dict[str, list[float]]] = {}
        kernels: dict[str, list[float]] = {}
        seconds: dict[str, list[float]] = {}
        not_run = []
        for name, seed in itertools.product(args.configurations, range(args.repetitions)):
            if args.report_only and not (run_folder(args, target, name, seed) / "model.pt").is_file():
                not_run.append(f"{name} (seed {seed})")
                continue
            model_path = train_one(args, train_cases, val, target, name, seed)
            model = load_checkpoint(model_path)
            record = cached(model_path.parent / "scores.json", evaluate_model, model, test, True)
            seconds.setdefault(name, []).append(training_seconds(model_path.parent))
            for case in test:
                collect(lr_rows.setdefault(name, {}), record["lr"][case.name])
                collect(hr_rows.setdefault(name, {}), record["hr"][case.name])
                ssim.setdefault(name, []).append(record["hr"][case.name]["body"]["ssim"])
                for label, value in record["artifact"].get(case.name, {}).items():
                    artifacts.setdefault(name, {}).setdefault(label, []).append(value)
            if "kernel" in record:
                kernels[f"{name}, seed {seed}"] = record["kernel"]
        baseline_file = Path(args.out_dir) / target / "baselines.json"
        baseline_record = cached(baseline_file, baseline_scores, test, contrast)
        for case in test:
            for label in BASELINES:
                collect(hr_rows.setdefault(label, {}), baseline_record[case.name][label])
        kernels |= cached(Path(args.out_dir) / target / "truth_kernels.json", truth_kernels, test, contrast)
        if unseen:
            truth = cached(Path(args.out_dir) / target / f"truth_kernels-{names}.json", truth_kernels, unseen, contrast)
            kernels |= {f"{label}, fitted on {names}": kernel for label, kernel in truth.items()}
        for extra in [m.split("=", 1)[1] for m in args.models if m.startswith(f"{target}=")]:
            loaded = load_model(extra)
            record = cached(
                Path(args.out_dir) / target / f"model-{model_key(extra)}-{loaded.info.name}.json",
                evaluate_model,
                loaded,
                test,
                False,
            )
            scheme = loaded.info.training.get("config", {}).get("kernel_scheme", "fig3")
            label = f"`{extra}` (longer training, {scheme} kernels)"
            for case in test:
                collect(lr_rows.setdefault(label, {}), record["lr"][case.name])
                collect(hr_rows.setdefault(label, {}), record["hr"][case.name])
            kernels[label] = record["kernel"]
            if unseen:
                fitted = cached(
                    Path(args.out_dir) / target / f"kernel-{model_key(extra)}-{loaded.info.name}-{names}.json",
                    lambda m: {"kernel": trained_kernel(m, unseen)},
                    loaded,
                )
                kernels[f"{label}, fitted on {names}"] = fitted["kernel"]

        report += [f"## Target `{target}` ({contrast})", ""]
        if not_run:
            report += [f"Not run for this target (CPU time): {', '.join(not_run)}.", ""]
        report += ["Training time per model (s, mean over repetitions): " + ", ".join(
            f"{name} {np.mean(values):.0f}" for name, values in seconds.items()) + ".", ""]  # fmt: skip
        report += table(lr_rows, "sTSE_LR against the thick TSE (what the paper measured); mean ± sd over "
                        "held-out subjects x repetitions", ("body", "bone"))  # fmt: skip
        report += table(hr_rows, "sTSE_HR against the true high-resolution TSE (what the paper could not); "
                        "Low-to-low upsampled by cubic B-spline", ("body", "bone"))  # fmt: skip
        report += ["**Paired t-tests** (SSIM of sTSE_HR in the body, pairs = subjects x repetitions)", ""]
        report += ["| a | b | mean a - b | p | pairs |", "|---|---|---|---|---|"]
        for a, b in itertools.combinations(list(ssim), 2):
            result = paired_t_test(ssim[a], ssim[b])
            report.append(f"| {a} | {b} | {result.mean_difference:+.4f} | {result.p_value:.3g} | {result.pairs} |")
        size = "x".join(str(n) for n in ARTIFACT_CROP)
        report += ["", f"**Slice-dependent artifact** (Fig. 6/8): share of the LR profile's power at a period of 4 "
                   f"slices (`mrsynth.artifacts.slice_periodicity`; larger means a stronger artifact), on a "
                   f"{size} (SI AP LR) crop around each held-out head's centre, paper's sliding windows with "
                   "Gaussian fusion; mean over "
                   "subjects x repetitions", ""]  # fmt: skip
        report += ["| configuration | stride 18 18 4 | stride 18 18 1 |", "|---|---|---|"]
        for name, measure in artifacts.items():
            report.append(f"| {name} | {np.mean(measure['18 18 4']):.4f} | {np.mean(measure['18 18 1']):.4f} |")
        report += ["", f"**Table A1**: the offset-0 downsampling kernel trained with the network frozen, on "
                   f"{KERNEL_PATCHES} patches of the held-out subjects (which no model trained on), from [1/2, 1/2, "
                   f"0, 0], Adam 1e-4, {KERNEL_STEPS} steps; SAD = sum of absolute differences from the simulator's "
                   "slice profile", ""]  # fmt: skip
        report += ["| kernel | w0 | w1 | w2 | w3 | SAD |", "|---|---|---|---|---|---|"]
        report.append(kernel_row("simulator's slice profile", profile, profile))
        report += [kernel_row(label, kernel, profile) for label, kernel in kernels.items()] + [""]
        raw[target] = {"lr": lr_rows, "hr": hr_rows, "kernels": kernels, "artifacts": artifacts, "seconds": seconds}
    report.append(f"Wall time of this call: {(time.time() - started) / 60:.1f} min (cached runs are not retrained).")
    with atomic_path(args.report) as tmp:
        tmp.write_text("\n".join(report) + "\n", encoding="utf-8")
    with atomic_path(Path(args.out_dir) / "experiments.json") as tmp:
        tmp.write_text(json.dumps(raw, indent=1, default=float), encoding="utf-8")
    print(f"wrote {args.report}")


if __name__ == "__main__":
    main()
