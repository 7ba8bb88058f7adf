"""Evaluate MRI2MRI models (paper 002) on a held-out real subject against an oracle global intensity map.

For each model, the held-out subject's input contrasts are given raw, z-scored (inside the brain)
and changed by 3.7 x - 120 (one network pass each, without the mirrored average); the synthetic
image is compared with the real target contrast inside the brain (the invariant mask of the last
input) by SSIM (mrsynth.metrics, 21x21x3 window), MAE and PSNR, with both images in the model's
units (``normalisation.normalise_affine``). The baseline is the best global intensity map of the
(normalised) input, fitted on the test subject's own target: the conditional mean of the target
in 128 quantile bins of the input, linearly interpolated between bin centres (two inputs: 32 x 32
quantile bins, looked up). It is an oracle: it has seen the truth.

    PYTHONPATH=. python scripts/eval_mri2mri.py --model t1-to-t2 --model t1c-to-flair --json report.json

``--levels`` prints each subject's input medians (``normalisation.landmarks``' 50th percentile);
``--standardise`` gives a model that stores no histogram landmarks the training subjects' mean, so
that it runs with test-time histogram standardisation only; ``--flip-average`` adds the mirrored
pass that ``mrsynth synthesize`` makes by default.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml

from mrsynth.metrics import mae, psnr, ssim
from mrsynth.models import load_model
from mrsynth.normalisation import LANDMARK_QUANTILES, invariant_mask, landmarks, normalise_affine
from mrsynth.synthesis import synthesize
from mrsynth.volume_io import read_volume, to_paper

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("raw", "z-scored", "3.7x-120")


def oracle_map(inputs: list[np.ndarray], target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The conditional mean of ``target`` given the inputs' intensities, fitted and applied inside ``mask``."""
    out = np.zeros_like(target)
    values = [x[mask].astype(np.float64) for x in inputs]
    truth = target[mask].astype(np.float64)
    if len(inputs) == 1:
        edges = np.unique(np.quantile(values[0], np.linspace(0, 1, 129)))
        bins = np.clip(np.searchsorted(edges, values[0], side="right") - 1, 0, len(edges) - 2)
        counts = np.bincount(bins, minlength=len(edges) - 1)
        means = np.bincount(bins, truth, minlength=len(edges) - 1) / np.maximum(counts, 1)
        centres = np.bincount(bins, values[0], minlength=len(edges) - 1) / np.maximum(counts, 1)
        used = counts > 0
        out[mask] = np.interp(values[0], centres[used], means[used])
        return out
    codes = np.zeros(truth.shape, dtype=np.int64)
    for value in values:
        edges = np.unique(np.quantile(value, np.linspace(0, 1, 33)))
        codes = codes * 33 + np.clip(np.searchsorted(edges, value, side="right") - 1, 0, len(edges) - 2)
    _, inverse = np.unique(codes, return_inverse=True)
    means = np.bincount(inverse, truth) / np.bincount(inverse)
    out[mask] = means[inverse]
    return out


def variants(image: sitk.Image, brain: np.ndarray) -> dict[str, sitk.Image]:
    """The same scan raw, z-scored inside the brain, and rescaled with an offset."""
    array = sitk.GetArrayFromImage(image)
    inside = array[brain]
    z_scored = sitk.GetImageFromArray(((array - inside.mean()) / inside.std()).astype(np.float32))
    z_scored.CopyInformation(image)
    return dict(zip(VARIANTS, (image, z_scored, image * 3.7 - 120.0), strict=True))


def scores(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    return {
        "ssim": ssim(prediction, truth, mask),
        "mae": mae(prediction, truth, mask),
        "psnr": psnr(prediction, truth, mask),
    }


def case_landmarks(case: dict[str, str], contrast: str) -> list[float]:
    """``normalisation.landmarks`` of one subject's contrast, normalised as synthesize normalises it."""
    array = to_paper(read_volume(ROOT / case[contrast], contrast))
    mask = invariant_mask(array)
    return landmarks(normalise_affine(array, mask)[0], mask)


def evaluate(
    name: str,
    case: dict[str, str],
    chosen: list[str],
    flip_average: bool = False,
    standardise_onto: list[dict[str, str]] | None = None,
) -> list[dict]:
    """``standardise_onto``: training cases whose mean landmarks a model without its own is given."""
    model = load_model(name)
    standardised = bool(standardise_onto) and "landmarks" not in model.info.normalisation
    if standardised:
        info = copy.deepcopy(model.info)
        reference = [
            [float(v) for v in np.mean([case_landmarks(c, contrast) for c in standardise_onto], axis=0)]
            for contrast in info.inputs
        ]
        info.normalisation["landmarks"] = {"quantiles": list(LANDMARK_QUANTILES), "reference": reference}
        model = type(model)(network=model.network, info=info, path=model.path)
    info = model.info
    images = [read_volume(ROOT / case[c], c) for c in info.inputs]
    arrays = [to_paper(image) for image in images]
    mask = invariant_mask(arrays[-1])
    truth = normalise_affine(to_paper(read_volume(ROOT / case[info.output], info.output)), mask)[0]
    normalised = [normalise_affine(a, mask)[0] for a in arrays]
    baseline = scores(oracle_map(normalised, truth, mask), truth, mask)
    native_brain = [sitk.GetArrayFromImage(image) != 0 for image in images]
    per_input = [variants(image, brain) for image, brain in zip(images, native_brain, strict=True)]
    rows, reference = [], None
    for variant in chosen:
        start = time.perf_counter()
        result = synthesize(model, [v[variant] for v in per_input], device="cpu", flip_average=flip_average)
        seconds = time.perf_counter() - start
        prediction = to_paper(result.hr)
        if reference is None:  # the first variant run: the others are compared with it
            reference = prediction
        row = {
            "model": name,
            "inputs": " + ".join(info.inputs),
            "output": info.output,
            "subject": case["name"],
            "variant": variant,
            "flip_average": flip_average,
            "standardised_at_test": standardised,
            **scores(prediction, truth, mask),
            "oracle_map": baseline,
            "max_abs_diff_vs_first": float(np.abs(prediction - reference).max()),
            "seconds": seconds,
        }
        rows.append(row)
        print(json.dumps(row))
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | inputs -> output | input given | SSIM model | SSIM oracle map | MAE model | MAE oracle map "
        "| PSNR model (dB) | PSNR oracle map (dB) | max abs diff vs first row |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        o = r["oracle_map"]
        lines.append(
            f"| {r['model']} | {r['inputs']} -> {r['output']} | {r['variant']} | {r['ssim']:.4f} | {o['ssim']:.4f} "
            f"| {r['mae']:.4f} | {o['mae']:.4f} | {r['psnr']:.2f} | {o['psnr']:.2f} "
            f"| {r['max_abs_diff_vs_first']:.1e} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="registered name or checkpoint (repeat)")
    parser.add_argument("--cases", default=str(ROOT / "configs" / "mri2mri-cases.yaml"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS, help="input forms to run")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--flip-average", action="store_true", help="also run the mirrored pass and average")
    parser.add_argument(
        "--standardise", action="store_true", help="give models without landmarks the training subjects' mean"
    )
    parser.add_argument("--levels", action="store_true", help="print every subject's input medians first")
    args = parser.parse_args()
    cases = yaml.safe_load(Path(args.cases).read_text(encoding="utf-8"))
    case = cases["test"][0]
    if args.levels:
        for name in args.model:
            for contrast in load_model(name).info.inputs:
                for c in cases["train"] + cases["test"]:
                    median = case_landmarks(c, contrast)[LANDMARK_QUANTILES.index(50.0)]
                    print(f"{c['name']} {contrast}: median {median:.3f} of the brain's 99th percentile")
    onto = cases["train"] if args.standardise else None
    rows = [row for name in args.model for row in evaluate(name, case, args.variants, args.flip_average, onto)]
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print(markdown(rows))


if __name__ == "__main__":
    main()
