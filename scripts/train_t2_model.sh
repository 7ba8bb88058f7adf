#!/usr/bin/env bash
# Retrain the bundled model gre-to-t2tse-sim (GE aOP + aIP -> T2w TSE) and bundle it with its measured card.
# It uses the subjects that scripts/train_default_model.sh simulates (run that first) and starts from the
# bundled gre-to-tse-sim weights (configs/gre-to-t2tse-sim.yaml).
# Usage: scripts/train_t2_model.sh [extra --set overrides, e.g. --set device=cuda]
# A killed run continues where it stopped when the script is started again.
set -euo pipefail
cd "$(dirname "$0")/.."
run=runs/gre-to-t2tse-sim
if [ ! -f runs/sim/seg_15/TSE_T2_thick.nii.gz ]; then
  echo "no simulated subjects in runs/sim: run scripts/train_default_model.sh first" >&2
  exit 1
fi
if [ ! -f "$run/model.pt" ]; then
  if [ -f "$run/checkpoints/last.pt" ]; then
    mrsynth train --resume "$run"
  else
    mrsynth train --config configs/gre-to-t2tse-sim.yaml --run-dir "$run" "$@"
  fi
fi
python scripts/bundle_model.py "$run/model.pt" --card-intro docs/gre-to-t2tse-sim-card.md
