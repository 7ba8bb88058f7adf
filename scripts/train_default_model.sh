#!/usr/bin/env bash
# Retrain the bundled model gre-to-tse-sim from scratch:
# simulate SynthSeg subjects 01-15 (01-12 train, 13-15 validation), train, and bundle the result.
# Usage: scripts/train_default_model.sh [extra mrsynth train --set overrides, e.g. --set device=cuda]
set -euo pipefail
cd "$(dirname "$0")/.."
labels=../shared/data/synthseg_labels
mkdir -p runs/sim
for i in $(seq -w 1 15); do
  [ -f runs/sim/seg_$i/TSE_thick.nii.gz ] && continue
  mrsynth simulate "$labels/training_seg_$i.nii.gz" --atlas synthseg --out-dir runs/sim/seg_$i --seed "$i" --crop-to-head
done
if [ -f runs/gre-to-tse-sim/checkpoints/last.pt ]; then
  mrsynth train --resume runs/gre-to-tse-sim
else
  mrsynth train --config configs/gre-to-tse-sim.yaml --run-dir runs/gre-to-tse-sim "$@"
fi
python scripts/bundle_model.py runs/gre-to-tse-sim/model.pt --card-intro docs/gre-to-tse-sim-card.md
