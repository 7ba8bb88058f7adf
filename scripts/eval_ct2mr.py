"""Evaluate CT -> MR models on held-out simulated subjects: PSNR, SSIM, Tenengrad (a table like 004's Table 2).

Each case folder holds ``CT``, ``TSE_HR`` and ``head_mask`` (``mrsynth simulate --ct``). Every model
runs through ``mrsynth.synthesis.synthesize`` (the path ``mrsynth synthesize`` takes) on the whole
CT; the truth is TSE_HR divided by its 99th percentile in the head (the models' output unit).
Metrics inside the head mask: PSNR and SSIM (data range: the truth's range in the mask; SSIM with a
7 x 7 x 1 window, i.e. axial 2D) and Tenengrad (``metrics.tenengrad``), given as mean +- standard
deviation over the test subjects. With ``--doc`` the Markdown table replaces the lines between the
markers ``<!-- ct2mr-table -->`` and ``<!-- /ct2mr-table -->`` of that file.

    PYTHONPATH=. python scripts/eval_ct2mr.py --model MSE=runs/mse/model.pt --model BCE=runs/bce/model.pt \
        --cases cases/s05 cases/s06 --doc docs/other-systems.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mrsynth.checkpoint import load_checkpoint
from mrsynth.data import find_volume
from mrsynth.files import atomic_path
from mrsynth.inference import InferenceOptions
from mrsynth.masks import normalise_p99
from mrsynth.metrics import psnr, ssim, tenengrad
from mrsynth.synthesis import synthesize
from mrsynth.volume_io import paper_index_axis, read_volume, to_paper

SSIM_WINDOW = (1, 7, 7)  # paper order SI, AP, LR: one axial slice, 7 x 7 in-plane
BEGIN, END = "<!-- ct2mr-table -->", "<!-- /ct2mr-table -->"


def central_slab(image: sitk.Image, slices: int | None) -> sitk.Image:
    """The ``slices`` axial (SI) slices around the middle of the volume; all of it for None."""
    if slices is None:
        return image
    axis = paper_index_axis(image, 0)
    length = image.GetSize()[axis]
    start = max(0, (length - slices) // 2)
    box = [slice(None)] * 3
    box[axis] = slice(start, min(length, start + slices))
    return image[tuple(box)]


def evaluate(model_path: str, case: Path, slices: int | None = None) -> dict[str, float]:
    """PSNR, SSIM and Tenengrad of one model on one case, and the truth's own Tenengrad."""
    ct = central_slab(read_volume(find_volume(case, "CT"), "CT"), slices)
    mask = central_slab(read_volume(find_volume(case, "head_mask"), "head_mask", check=False), slices)
    head = to_paper(mask) > 0
    target = central_slab(read_volume(find_volume(case, "TSE_HR"), "TSE_HR"), slices)
    # the truth's unit: its 99th percentile in the whole head, as in training
    full_head = to_paper(read_volume(find_volume(case, "head_mask"), "head_mask", check=False)) > 0
    scale = normalise_p99(to_paper(read_volume(find_volume(case, "TSE_HR"), "TSE_HR")), full_head)[1]
    truth = to_paper(target) / scale
    result = synthesize(
        load_checkpoint(model_path), [ct], options=InferenceOptions.preset("paper"), mask=mask, flip_average=False
    )
    prediction = to_paper(result.hr)
    return {
        "psnr": psnr(prediction, truth, head),
        "ssim": ssim(prediction, truth, head, window=SSIM_WINDOW),
        "tenengrad": tenengrad(prediction, head),
        "tenengrad_truth": tenengrad(truth, head),
    }


def linear_baseline(case: Path, slices: int | None = None) -> dict[str, float]:
    """The oracle baseline: the CT clipped to [-1000, 1000] HU, mapped by a * HU + b fitted on the truth in the head."""
    ct = to_paper(central_slab(read_volume(find_volume(case, "CT"), "CT"), slices)).astype(np.float64)
    head = to_paper(central_slab(read_volume(find_volume(case, "head_mask"), "head_mask", check=False), slices)) > 0
    full_head = to_paper(read_volume(find_volume(case, "head_mask"), "head_mask", check=False)) > 0
    scale = normalise_p99(to_paper(read_volume(find_volume(case, "TSE_HR"), "TSE_HR")), full_head)[1]
    truth = to_paper(central_slab(read_volume(find_volume(case, "TSE_HR"), "TSE_HR"), slices)) / scale
    hu = np.clip(ct, -1000.0, 1000.0)
    a, b = np.polyfit(hu[head], truth[head], 1)
    prediction = a * hu + b
    return {
        "psnr": psnr(prediction, truth, head),
        "ssim": ssim(prediction, truth, head, window=SSIM_WINDOW),
        "tenengrad": tenengrad(prediction, head),
        "tenengrad_truth": tenengrad(truth, head),
    }


def table(results: dict[str, list[dict[str, float]]]) -> str:
    """004-style Markdown table: mean +- sd over subjects per model."""

    def cell(rows: list[dict[str, float]], key: str, digits: int) -> str:
        values = np.array([r[key] for r in rows])
        return f"{values.mean():.{digits}f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.{digits}f}"

    lines = ["| loss | PSNR (dB) | SSIM | Tenengrad |", "|---|---|---|---|"]
    for name, rows in results.items():
        lines.append(f"| {name} | {cell(rows, 'psnr', 2)} | {cell(rows, 'ssim', 3)} | {cell(rows, 'tenengrad', 4)} |")
    first = next(iter(results.values()))
    lines.append(f"| (truth: simulated T1w) | - | - | {cell(first, 'tenengrad_truth', 4)} |")
    return "\n".join(lines)


def write_into(doc: Path, text: str) -> None:
    content = doc.read_text(encoding="utf-8")
    if BEGIN not in content or END not in content:
        raise SystemExit(f"{doc} lacks the markers {BEGIN} and {END}: add them where the table goes")
    head, rest = content.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with atomic_path(doc) as tmp:
        tmp.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], metavar="NAME=FILE", help="a model to evaluate")
    parser.add_argument("--cases", nargs="+", required=True, help="held-out case folders")
    parser.add_argument("--doc", help="Markdown file whose marked table to replace")
    parser.add_argument("--json", help="also write every per-case number here")
    parser.add_argument("--previous", help="a --json file of an earlier run on the same cases: its models come first")
    parser.add_argument(
        "--baseline", action="store_true", help="add the linear map of the CT fitted on the truth (an oracle)"
    )
    parser.add_argument("--slices", type=int, help="evaluate the central SLICES axial slices only (default: all)")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {}
    if args.previous:
        results.update(json.loads(Path(args.previous).read_text(encoding="utf-8")))
    for item in args.model:
        name, _, path = item.partition("=")
        results[name] = []
        for case in args.cases:
            row = evaluate(path, Path(case), args.slices)
            print(name, Path(case).name, json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)
            results[name].append(row)
    if args.baseline:
        name = "baseline: a x HU + b fitted on the truth"
        results[name] = [linear_baseline(Path(case), args.slices) for case in args.cases]
        print(name, json.dumps(results[name]), flush=True)
    extent = f"the central {args.slices} axial slices" if args.slices else "the whole head"
    subjects = ", ".join(Path(c).name for c in args.cases)
    text = table(results) + f"\n\nHeld-out simulated subjects {subjects}; {extent}, inside the head mask."
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.doc:
        write_into(Path(args.doc), text)


if __name__ == "__main__":
    main()
