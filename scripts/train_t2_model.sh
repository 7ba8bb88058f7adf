#!/usr/bin/env bash
# Train gre-to-t2tse-sim (GE aOP + aIP -> T2w TSE) and bundle it with its measured card.
# It uses the subjects that scripts/train_default_model.sh simulates (run that first), and trains in three
# stages from scratch (version 2; docs/experiments.md, "A per-voxel branch"): the per-voxel branch
# alone (configs/gre-to-t2tse-sim-pointwise1.yaml, PointwiseNet), then a HighResNet whose branch starts
# from it and whose residual blocks start at zero output (configs/gre-to-t2tse-sim-pointwise2.yaml),
# then more of the same (configs/gre-to-t2tse-sim-pointwise3.yaml). About 75 minutes on the CPU.
# Version 1's four stages (configs/gre-to-t2tse-sim.yaml, -stage2, -aligned, -aligned2, from
# gre-to-tse-sim's stage-2 weights) are kept for the record.
# Usage: scripts/train_t2_model.sh [extra --set overrides for every stage, e.g. --set device=cuda]
# A killed run continues where it stopped when the script is started again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f runs/sim/seg_15/TSE_T2_thick.nii.gz ]; then
  echo "no simulated subjects in runs/sim: run scripts/train_default_model.sh first" >&2
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
stage runs/t2_pw1 configs/gre-to-t2tse-sim-pointwise1.yaml "$@"
stage runs/t2_pw2 configs/gre-to-t2tse-sim-pointwise2.yaml "$@"
stage runs/t2_pw3 configs/gre-to-t2tse-sim-pointwise3.yaml "$@"
python scripts/bundle_model.py runs/t2_pw3/model.pt --card-intro docs/gre-to-t2tse-sim-card.md
