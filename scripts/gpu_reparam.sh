#!/usr/bin/env bash
# Re-parameterisation runs side by side on one GPU, each for MINUTES of training. PLAN picks them:
#   direct  Param-to-Param in one network with MSE (configs/reparam-param-gpu.yaml) and with relative MSE,
#           and Default-to-Param (configs/reparam-default-gpu.yaml), 4 data workers each;
#   chain   the first stage of a chained Param-to-Param with the short-TR, short-TE input mixture
#           (configs/reparam-to-default-gpu.yaml) and Default-to-Param, 6 data workers each; join the two
#           afterwards with scripts/chain_reparam.py OUT/p2d/model.pt OUT/d2p/model.pt --out CHAINED.pt.
# ANATOMIES holds scripts/export_anatomies.py's .npz files of SynthSeg subjects 01-15 (24 slices), so the GPU
# machine needs no SimpleITK to read label maps; where SimpleITK is not installed at all, the runs import a
# stand-in module that refuses every use. Each run's model and log are copied to OUT/NAME/; further arguments
# (--set KEY=VALUE) go to every run. From the repository root:
#   scripts/gpu_reparam.sh ANATOMIES RUNS OUT MINUTES [PLAN] [--set KEY=VALUE ...]      (PLAN: direct by default)
set -euo pipefail
anatomies=$1 runs=$2 out=$3 minutes=$4
shift 4
plan=direct
if [[ $# -gt 0 && $1 != --* ]]; then plan=$1; shift; fi
case $plan in
    direct) names=(p2p_mse p2p_rel d2p)
            configs=(reparam-param-gpu reparam-param-gpu reparam-default-gpu)
            extras=("" "--set loss=relative_mse --set seed=73" "") ;;
    chain)  names=(p2d d2p)
            configs=(reparam-to-default-gpu reparam-default-gpu)
            extras=("" "--set data_workers=6") ;;
    *) echo "unknown plan $plan: give direct or chain" >&2; exit 2 ;;
esac
mkdir -p "$runs" "$out"
if ! python3 -c "import SimpleITK" 2>/dev/null; then
    stand_in=$(mktemp -d)
    mkdir "$stand_in/SimpleITK"
    printf 'def __getattr__(name):\n    raise ImportError(f"SimpleITK.{name}: SimpleITK is not installed here")\n' \
        > "$stand_in/SimpleITK/__init__.py"
    export PYTHONPATH="$stand_in${PYTHONPATH:+:$PYTHONPATH}"
fi
data=(--set "data.train=[\"$anatomies/training_seg_0[1-9].npz\", \"$anatomies/training_seg_1[0-3].npz\"]"
      --set "data.val=[\"$anatomies/training_seg_1[4-5].npz\"]" --set "time_budget_minutes=$minutes")
for i in "${!names[@]}"; do
    # shellcheck disable=SC2086  # extras[i] holds several words on purpose
    python3 -m mrsynth train --config "configs/${configs[$i]}.yaml" --run-dir "$runs/${names[$i]}" "${data[@]}" \
        ${extras[$i]} "$@" > "$runs/${names[$i]}.txt" 2>&1 &
done
status=0
for job in $(jobs -p); do wait "$job" || status=1; done
for name in "${names[@]}"; do
    mkdir -p "$out/$name"
    cp "$runs/$name/log.csv" "$out/$name/" || status=1
    cp "$runs/$name/model.pt" "$out/$name/" || status=1
    tail -c 2000 "$runs/$name.txt" | tr '\r' '\n' | tail -3
done
exit $status
