"""Bundle a trained model into the package: weights, registry entry (sha256, size) and a measured model card.

The card's metrics are measured here, on a test subject simulated from the BrainWeb phantom (never
seen in training), against the true high-resolution TSE, next to the two baselines a synthesized
image must beat.

    python scripts/bundle_model.py runs/gre-to-tse-sim/model.pt --card-intro docs/gre-to-tse-sim-card.md
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import SimpleITK as sitk
import torch

from mrsynth.checkpoint import read_checkpoint
from mrsynth.demo import demo
from mrsynth.files import atomic_path
from mrsynth.input_levels import training_levels
from mrsynth.models.bundling import MODELS, install, register
from mrsynth.simulate import target_volumes


def metrics_table(metrics: dict, truth: str) -> str:
    lines = [
        f"| image vs true {truth} | SSIM | MAE | MI (nats) | PSNR (dB) | SSIM bone | MAE bone |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        body, bone = m["body"], m.get("bone", {})
        lines.append(
            f"| {name} | {body['ssim']:.4f} | {body['mae']:.4f} | {body['mi']:.3f} | {body['psnr']:.2f} | "
            f"{bone.get('ssim', float('nan')):.4f} | {bone.get('mae', float('nan')):.4f} |"
        )
    return "\n".join(lines)


def loss_name(training: dict) -> str:
    """The validation loss as the run computed it: L1, plus the MIND term where the config weighted it."""
    mind = float(training.get("config", {}).get("mind_weight") or 0.0)
    return f"loss (L1 + {mind:g} MIND)" if mind else "L1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="exported model.pt of a training run")
    parser.add_argument("--card-intro", type=Path, required=True, help="Markdown: what the model is, how it was made")
    parser.add_argument("--licence", default="Apache-2.0")
    parser.add_argument("--task", default="contrast-synthesis")
    args = parser.parse_args()

    payload = read_checkpoint(args.model)
    info = payload["info"]
    name = info["name"]
    with tempfile.TemporaryDirectory() as tmp:
        source = args.model
        if info["normalisation"].get("method") == "p99" and "input_levels" not in info["normalisation"]:
            # trained before models recorded it: measured here on the run's own training cases
            folders = info["training"]["config"]["data"]["train"]
            info["normalisation"]["input_levels"] = training_levels(folders, info["inputs"])
            source = Path(tmp) / f"{name}.pt"
            torch.save(payload, source)
        target = install(source)
    with tempfile.TemporaryDirectory() as tmp:
        summary = demo(Path(tmp), model=str(target), preset="fast", device="cpu")
        spacing = sitk.ReadImage(str(Path(tmp) / "sTSE_HR.nii.gz")).GetSpacing()
    training = info["training"]
    card = (
        args.card_intro.read_text(encoding="utf-8").rstrip()
        + "\n\n## Training run\n\n"
        + f"- cases: train {', '.join(training['train_cases'])}; validation {', '.join(training['val_cases'])}\n"
        + f"- iterations: {training['iterations']}; "
        + f"best validation {loss_name(training)} (p99-normalised): {training['best_val_loss']:.4f}\n"
        + f"- architecture: {info['architecture']} {json.dumps(info['arguments'])}\n"
        + f"- patch (SI AP LR): {info['patch']}; default stride: {info['stride']}; LR kernel: "
        + f"{[round(k, 4) for k in info['lr_kernel']]}; pair start: {training['pair_start']}\n"
        + "- input levels (each input's median in the body mask after normalisation; scans far from them "
        + f"are warned about): {[round(v, 3) for v in info['normalisation'].get('input_levels', [])]}\n"
        + "\n## Measured on the test subject\n\n"
        + "BrainWeb phantom simulated with `mrsynth demo` (seed 2026, voxel size "
        + f"{spacing} mm), never seen in training; images scaled by their 99th percentile inside the head, "
        + "SSIM window 21x21x3 (SI AP LR), inside the head mask and the bone mask (skull, marrow):\n\n"
        + metrics_table(summary["metrics"], target_volumes(info["output"])[1])
        + "\n"
    )
    card_file = MODELS / f"{name}.md"
    with atomic_path(card_file) as tmp_card:
        tmp_card.write_text(card, encoding="utf-8")
    register(target, args.task, licence=args.licence)
    print(card)


if __name__ == "__main__":
    main()
