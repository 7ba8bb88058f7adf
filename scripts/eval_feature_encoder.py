"""Measure a trained feature encoder on held-out slices and, with --bundle, ship it as a bundled model.

Held-out data (never used in training or validation by configs/mr-feature-encoder.yaml): the four
real contrasts of TCGA-FG-6692 (tcga_brats_space), and SynthSeg subject 15 and the BrainWeb
phantom simulated by mrsynth.simulate. Slices are taken as in training (12 per axis, inside the
body, p99 units) and reconstructed whole; the error is reported next to a reference point, the
input smoothed by a Gaussian of 1 pixel, to show what size of error is small.

    PYTHONPATH=. python scripts/eval_feature_encoder.py runs/mr-feature-encoder/model.pt \
        --report docs/feature_encoder_report.json --bundle
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from mrsynth.checkpoint import load_checkpoint
from mrsynth.encoder_training import ENCODER_DEFAULTS, reconstruction_errors, slice_bank
from mrsynth.files import atomic_path
from mrsynth.models.bundling import MODELS, install, register

ROOT = Path(__file__).resolve().parents[1]
DATA = "../shared/data"
TEST_SETS = {
    "real TCGA-FG-6692 (T1, T1c, T2, FLAIR)": {"volumes": [f"{DATA}/tcga_brats_space/TCGA-FG-6692_*.nii.gz"]},
    "simulated SynthSeg subject 15 (GE aOP, aIP, TSE T1w, T2w)": {
        "label_maps": [f"{DATA}/synthseg_labels/training_seg_15.nii.gz"]
    },
    "simulated BrainWeb phantom (GE aOP, aIP, TSE T1w, T2w)": {"label_maps": ["bundled-phantom"]},
}


class Smoothing(torch.nn.Module):
    """Reference point: the input smoothed by a Gaussian of ``sigma`` pixels (what a blurry coder returns)."""

    def __init__(self, sigma: float, intensity_range: float):
        super().__init__()
        self.sigma, self.intensity_range = sigma, intensity_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clipped = np.clip(x[0, 0].numpy(), 0, self.intensity_range)
        return torch.from_numpy(ndimage.gaussian_filter(clipped, self.sigma).astype(np.float32))[None, None]


def evaluate(model_path: Path) -> dict:
    network = load_checkpoint(model_path).network
    data = ENCODER_DEFAULTS["data"] | {"atlas": "synthseg"}
    report: dict = {"model": str(model_path), "sets": {}}
    for name, split in TEST_SETS.items():
        slices, sources = slice_bank(split, data, seed=2026)
        started = time.time()
        errors = reconstruction_errors(network, slices)
        seconds = time.time() - started
        reference = reconstruction_errors(Smoothing(1.0, network.intensity_range), slices)
        report["sets"][name] = {
            "sources": sources,
            "slices": len(slices),
            "encoder": errors,
            "gaussian_1px": reference,
            "seconds": seconds,
        }
        print(f"{name}: {len(slices)} slices, encoder {errors}, gaussian 1 px {reference}")
    return report


def table(report: dict) -> str:
    lines = [
        "| held-out set | slices | MAE | RMSE | PSNR (dB) | MAE, Gaussian 1 px | PSNR, Gaussian 1 px |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in report["sets"].items():
        e, g = result["encoder"], result["gaussian_1px"]
        lines.append(
            f"| {name} | {result['slices']} | {e['mae']:.4f} | {e['rmse']:.4f} | {e['psnr']:.2f} | "
            f"{g['mae']:.4f} | {g['psnr']:.2f} |"
        )
    return "\n".join(lines)


def bundle(model_path: Path, report: dict, intro: Path) -> None:
    payload = torch.load(model_path, map_location="cpu", weights_only=True)
    info = payload["info"]
    name = info["name"]
    install(model_path)
    training = info["training"]
    card = (
        intro.read_text(encoding="utf-8").rstrip()
        + "\n\n## Training run\n\n"
        + f"- sources (train): {'; '.join(training['train_cases'])}\n"
        + f"- sources (validation, best checkpoint): {'; '.join(training['val_cases'])}\n"
        + f"- slices: {training['train_slices']} train, {training['val_slices']} validation; "
        + f"iterations: {training['iterations']} of batch {training['config']['batch_size']} "
        + f"({'x'.join(map(str, training['config']['patch']))} patches)\n"
        + f"- best validation MSE (tanh range): {training['best_val_loss']:.5f} "
        + f"(RMSE {training['best_val_rmse_p99']:.4f} in p99 units)\n"
        + f"- architecture: {info['architecture']} {json.dumps(info['arguments'])}\n"
        + "\n## Measured on held-out slices\n\n"
        + "Whole slices (12 per axis inside the body of each volume), p99 units (1.0 = the 99th percentile "
        + "inside the body), error against the slice clipped to [0, 1.25]; PSNR with peak 1.25. Produced by "
        + "`PYTHONPATH=. python scripts/eval_feature_encoder.py runs/mr-feature-encoder/model.pt "
        + "--report docs/feature_encoder_report.json --bundle`:\n\n"
        + table(report)
        + "\n"
    )
    with atomic_path(MODELS / f"{name}.md") as tmp:
        tmp.write_text(card, encoding="utf-8")
    register(MODELS / f"{name}.pt", "feature-encoder")
    print(card)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="exported model.pt of an encoder training run")
    parser.add_argument("--report", type=Path, required=True, help="JSON file for the measurements")
    parser.add_argument("--bundle", action="store_true", help="copy the model into mrsynth/models with card and entry")
    parser.add_argument("--card-intro", type=Path, default=ROOT / "docs" / "mr-feature-encoder-card.md")
    args = parser.parse_args()
    torch.set_num_threads(2)
    report = evaluate(args.model)
    report["finite"] = all(math.isfinite(r["encoder"]["mae"]) for r in report["sets"].values())
    with atomic_path(args.report) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(table(report))
    if args.bundle:
        bundle(args.model, report, args.card_intro)


if __name__ == "__main__":
    main()
