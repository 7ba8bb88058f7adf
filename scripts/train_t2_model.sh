#!/usr/bin/env bash
# Train gre-to-t2tse-sim (GE aOP + aIP -> T2w TSE) and bundle it with its measured card.
# It uses the subjects that scripts/train_default_model.sh simulates (run that first) and starts from the
# weights of gre-to-tse-sim's stage 2 (runs/gre-to-tse-sim-stage2), in four stages, each from the previous
# one's weights: configs/gre-to-t2tse-sim.yaml, configs/gre-to-t2tse-sim-stage2.yaml, then the aligned
# kernel scheme in configs/gre-to-t2tse-sim-aligned.yaml and configs/gre-to-t2tse-sim-aligned2.yaml.
# Usage: scripts/train_t2_model.sh [extra --set overrides for every stage, e.g. --set device=cuda]
# A killed run continues where it stopped when the script is started again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f runs/sim/seg_15/TSE_T2_thick.nii.gz ] || [ ! -f runs/gre-to-tse-sim-stage2/model.pt ]; then
  echo "no simulated subjects in runs/sim or no runs/gre-to-tse-sim-stage2: run scripts/train_default_model.sh first" >&2
  exit 1
fi
stage() {  # stage RUN_DIR CONFIG [overrides]
  local run=$1 config=$2
  shift 2
  if [ -f "$run/model.pt" ]; then return; fi
  if [ -f "$run/checkpoints/last.pt" ]; then
    mrsynth train --resume "$run"
  else
    mrsynth train --config "$config" --run-dir "$run" "$@"
  fi
}
stage runs/gre-to-t2tse-sim configs/gre-to-t2tse-sim.yaml "$@"
stage runs/gre-to-t2tse-sim-stage2 configs/gre-to-t2tse-sim-stage2.yaml "$@"
stage runs/gre-to-t2tse-sim-aligned configs/gre-to-t2tse-sim-aligned.yaml "$@"
stage runs/gre-to-t2tse-sim-aligned2 configs/gre-to-t2tse-sim-aligned2.yaml "$@"
python scripts/bundle_model.py runs/gre-to-t2tse-sim-aligned2/model.pt --card-intro docs/gre-to-t2tse-sim-card.md
