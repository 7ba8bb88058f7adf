#!/usr/bin/env bash
# Retrain the bundled model gre-to-tse-sim from scratch:
# simulate SynthSeg subjects 01-15 (01-12 train, 13-15 validation), train in eight stages
# (configs/gre-to-tse-sim.yaml, then configs/gre-to-tse-sim-stage2.yaml from its weights, then
# configs/gre-to-tse-sim-aligned.yaml to configs/gre-to-tse-sim-aligned4.yaml under the aligned kernel scheme,
# then configs/gre-to-tse-sim-mind.yaml with the L1 + 0.1 MIND loss, and configs/gre-to-tse-sim-mind2.yaml
# with it again for 65 minutes in bfloat16),
# and bundle the result with a model card measured on the BrainWeb test subject.
# Usage: scripts/train_default_model.sh [extra --set overrides for every stage, e.g. --set device=cuda]
# A killed run continues where it stopped when the script is started again.
set -euo pipefail
cd "$(dirname "$0")/.."
labels=../shared/data/synthseg_labels
mkdir -p runs/sim
for i in $(seq -w 1 15); do
  [ -f runs/sim/seg_$i/TSE_thick.nii.gz ] && continue
  mrsynth simulate "$labels/training_seg_$i.nii.gz" --atlas synthseg --out-dir runs/sim/seg_$i --seed "$((10#$i))" --crop-to-head
done
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
stage runs/gre-to-tse-sim-stage1 configs/gre-to-tse-sim.yaml "$@"
stage runs/gre-to-tse-sim-stage2 configs/gre-to-tse-sim-stage2.yaml "$@"
stage runs/gre-to-tse-sim-aligned configs/gre-to-tse-sim-aligned.yaml "$@"
stage runs/gre-to-tse-sim-aligned2 configs/gre-to-tse-sim-aligned2.yaml "$@"
stage runs/gre-to-tse-sim-aligned3 configs/gre-to-tse-sim-aligned3.yaml "$@"
stage runs/gre-to-tse-sim-aligned4 configs/gre-to-tse-sim-aligned4.yaml "$@"
stage runs/gre-to-tse-sim-mind configs/gre-to-tse-sim-mind.yaml "$@"
stage runs/gre-to-tse-sim-mind2 configs/gre-to-tse-sim-mind2.yaml "$@"
python scripts/bundle_model.py runs/gre-to-tse-sim-mind2/model.pt --card-intro docs/gre-to-tse-sim-card.md
