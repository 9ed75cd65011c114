#!/usr/bin/env bash
# Shared body of scripts/office_home_compare.sh and scripts/digits_compare.sh (not meant to be run directly).
# Expects BENCH (folder under configs/), TABLE_BENCH (benchmark name in `sfda table`) and DEFAULT_TASKS.
#
# For every seed and task: SHOT (configs/$BENCH/shot/<task>.yaml), SHOT with each Table IV loss or sampler and
# with the evolved and learned losses sfda adds (NGL, the EDL-style learned loss, the Baikal expression loss)
# (the same config plus configs/$BENCH/compare/<variant>.yaml), and SHOT+NS-WS
# (configs/$BENCH/shot_ns/<task>.yaml if it exists, else the task config plus compare/ns_ws.yaml).
# Arguments: numbers are seeds (default 2019 2020 2021, or $SEEDS), anything else is passed to every run
# (KEY=VALUE overrides, --force, ...). Finished runs are skipped and interrupted ones resume, so the script
# can simply be rerun. At the end `sfda table` prints every finished run of the benchmark under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
VARIANTS=${VARIANTS:-"focal gce ls nlnl sce apl low polyloss anl aul ce_mae ce_ogc cbs srs pbs ngl learned baikal"}
TASKS=${TASKS:-$DEFAULT_TASKS}
OUT=${OUT:-runs}
SFDA=${SFDA:-sfda}
if [ -n "${NPROC:-}" ] && ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: NPROC must be a number of processes per node (e.g. NPROC=4), got '$NPROC'" >&2; exit 2
fi
launch() {  # `$SFDA ARGS`, or with NPROC set `$TORCHRUN --nproc_per_node $NPROC -m sfda ARGS` (as scripts/_lib.sh)
  if [ -n "${NPROC:-}" ]; then ${TORCHRUN:-torchrun --standalone} --nproc_per_node "$NPROC" -m sfda "$@"; else $SFDA "$@"; fi
}
seeds=()
extra=()
for a in "$@"; do
  if [[ "$a" =~ ^[0-9]+$ ]]; then seeds+=("$a"); else extra+=("$a"); fi
done
if [ ${#seeds[@]} -eq 0 ]; then read -r -a seeds <<< "${SEEDS:-2019 2020 2021}"; fi
failed=()
run() {  # run NAME -c A [-c B]
  local name=$1; shift
  echo "== $name seed $seed"
  launch run "$@" "seed=$seed" "output_root=$OUT" ${extra[@]+"${extra[@]}"} || failed+=("$name seed $seed")
}
for seed in "${seeds[@]}"; do
  for task in $TASKS; do
    base="configs/$BENCH/shot/$task.yaml"
    run "$task SHOT" -c "$base"
    for v in $VARIANTS; do
      run "$task +$v" -c "$base" -c "configs/$BENCH/compare/$v.yaml"
    done
    if [ -f "configs/$BENCH/shot_ns/$task.yaml" ]; then
      run "$task SHOT+NS-WS" -c "configs/$BENCH/shot_ns/$task.yaml"
    else
      run "$task SHOT+NS-WS" -c "$base" -c "configs/$BENCH/compare/ns_ws.yaml"
    fi
  done
done
$SFDA table "$OUT" --benchmark "$TABLE_BENCH"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
