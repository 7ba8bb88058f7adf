"""Choose an MRI2MRI training recipe by leave-one-subject-out validation on the training subjects only.

Every recipe (a named set of config overrides) is trained from scratch once per fold: on all
training subjects of ``configs/mri2mri-cases.yaml`` but one, and scored on the one left out by
``eval_mri2mri.evaluate`` (SSIM inside the brain against the oracle global intensity map fitted on
that subject's truth). The held-out test subject is never touched, so the recipe that wins here can
then be trained on every training subject and scored once on it.

    PYTHONPATH=. python scripts/cv_mri2mri.py --config configs/mri2mri-t1c-to-flair.yaml \
        --recipe 'l1:loss.feature_network=null' --recipe 'l1+ssim:loss.feature_network=null,loss.ssim_weight=1' \
        --run-root runs/cv_t1c --json docs/mri2mri_cv.json

``--ensemble 'NAME:RECIPE,RECIPE'`` scores, per fold, the mean of recipes' fold models
(``mrsynth.ensemble``), e.g. one recipe trained with two seeds; each member must also be a ``--recipe``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_mri2mri import evaluate  # noqa: E402

from mrsynth.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from mrsynth.ensemble import combine  # noqa: E402
from mrsynth.mri2mri import MRI2MRI_DEFAULTS, train_mri2mri  # noqa: E402
from mrsynth.train_command import parse_overrides  # noqa: E402
from mrsynth.training import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_recipe(text: str) -> tuple[str, dict]:
    """``NAME:key=value,key=value`` as ``mrsynth train --set`` takes them; commas inside [...] belong to a list."""
    name, _, settings = text.partition(":")
    return name, parse_overrides(list(filter(None, re.split(r",(?![^\[]*\])", settings))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the model's training config (its data.train is replaced)")
    parser.add_argument("--recipe", action="append", required=True, help="NAME:key=value,... (repeat)")
    parser.add_argument("--ensemble", action="append", default=[], help="NAME:RECIPE,RECIPE,... (repeat)")
    parser.add_argument("--cases", default=str(ROOT / "configs" / "mri2mri-cases.yaml"))
    parser.add_argument("--run-root", required=True, help="one run folder per recipe and fold is made here")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    recipes = dict(map(parse_recipe, args.recipe))
    for text in args.ensemble:
        unknown = [m for m in text.partition(":")[2].split(",") if m not in recipes]
        if unknown:
            parser.error(f"--ensemble {text}: {', '.join(unknown)} not given as --recipe (every member must be one)")
    training = yaml.safe_load(Path(args.cases).read_text(encoding="utf-8"))["train"]
    root = Path(args.run_root)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, overrides in recipes.items():
        for held in training:
            run_dir = root / f"{name}-{held['name']}"
            model = run_dir / "model.pt"
            if not model.is_file():
                data = {"train": [c for c in training if c is not held], "val": []}
                config = load_config(args.config, {**overrides, "data": data}, MRI2MRI_DEFAULTS)
                train_mri2mri(config, run_dir)
            row = evaluate(str(model), held, ["raw"])[0]
            rows.append({"recipe": name, "overrides": overrides, **row})
    for text in args.ensemble:
        name, _, members = text.partition(":")
        for held in training:
            run_dir = root / f"{name}-{held['name']}"
            run_dir.mkdir(exist_ok=True)
            fold_models = [load_checkpoint(root / f"{m}-{held['name']}" / "model.pt") for m in members.split(",")]
            model = combine(fold_models)
            save_checkpoint(run_dir / "model.pt", model.network, model.info)
            row = evaluate(str(run_dir / "model.pt"), held, ["raw"])[0]
            rows.append({"recipe": name, "overrides": {m: recipes[m] for m in members.split(",")}, **row})
    print(
        "| recipe | held-out training subject | SSIM model | SSIM oracle map | PSNR model (dB) | PSNR oracle map (dB) |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        o = r["oracle_map"]
        scores = f"{r['ssim']:.4f} | {o['ssim']:.4f} | {r['psnr']:.2f} | {o['psnr']:.2f}"
        print(f"| {r['recipe']} | {r['subject']} | {scores} |")
    for name in dict.fromkeys(r["recipe"] for r in rows):
        gaps = [r["ssim"] - r["oracle_map"]["ssim"] for r in rows if r["recipe"] == name]
        print(f"{name}: mean SSIM over the oracle map {statistics.fmean(gaps):+.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
