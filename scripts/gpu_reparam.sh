#!/usr/bin/env bash
# Three re-parameterisation runs side by side on one GPU, each for MINUTES of training: Param-to-Param
# in one network with MSE (configs/reparam-param-gpu.yaml) and with relative MSE, and Default-to-Param
# (configs/reparam-default-gpu.yaml). ANATOMIES holds scripts/export_anatomies.py's .npz files of SynthSeg
# subjects 01-15 (24 slices), so the GPU machine needs no SimpleITK to read label maps; where SimpleITK is
# not installed at all, the runs import a stand-in module that refuses every use. Each run's model and
# log are copied to OUT/NAME/; further arguments (--set KEY=VALUE) go to every run. From the repository root:
#   scripts/gpu_reparam.sh ANATOMIES RUNS OUT MINUTES [--set KEY=VALUE ...]
set -euo pipefail
mkdir -p "$2" "$3"
anatomies=$1 runs=$2 out=$3 minutes=$4
shift 4
if ! python3 -c "import SimpleITK" 2>/dev/null; then
    stand_in=$(mktemp -d)
    mkdir "$stand_in/SimpleITK"
    printf 'def __getattr__(name):\n    raise ImportError(f"SimpleITK.{name}: SimpleITK is not installed here")\n' \
        > "$stand_in/SimpleITK/__init__.py"
    export PYTHONPATH="$stand_in${PYTHONPATH:+:$PYTHONPATH}"
fi
data=(--set "data.train=[\"$anatomies/training_seg_0[1-9].npz\", \"$anatomies/training_seg_1[0-3].npz\"]"
      --set "data.val=[\"$anatomies/training_seg_1[4-5].npz\"]" --set "time_budget_minutes=$minutes" "$@")
python3 -m mrsynth train --config configs/reparam-param-gpu.yaml --run-dir "$runs/p2p_mse" "${data[@]}" \
    > "$runs/p2p_mse.txt" 2>&1 &
python3 -m mrsynth train --config configs/reparam-param-gpu.yaml --run-dir "$runs/p2p_rel" "${data[@]}" \
    --set loss=relative_mse --set seed=73 > "$runs/p2p_rel.txt" 2>&1 &
python3 -m mrsynth train --config configs/reparam-default-gpu.yaml --run-dir "$runs/d2p" "${data[@]}" \
    > "$runs/d2p.txt" 2>&1 &
status=0
for job in $(jobs -p); do wait "$job" || status=1; done
for name in p2p_mse p2p_rel d2p; do
    mkdir -p "$out/$name"
    cp "$runs/$name/log.csv" "$out/$name/" || status=1
    cp "$runs/$name/model.pt" "$out/$name/" || status=1
    tail -c 2000 "$runs/$name.txt" | tr '\r' '\n' | tail -3
done
exit $status
