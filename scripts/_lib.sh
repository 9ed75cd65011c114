# Shared by the run scripts in this folder: sourced by them, not run on its own.
#
# An SFDA script is one call, `sweep_tasks BENCH "TASKS" "$@"` ($METHODS x $TASKS, seeds 2019-2021 by default).
# Other scripts queue configs (paths relative to the repository root) with `queue` / `queue_variants`, then
# `run_queue BENCH "$@"`
# runs each queued config for each seed of $SEEDS (seeds outermost) with the script's extra arguments
# (KEY=VALUE overrides, --force, ...) and prints `sfda table` for BENCH. Finished runs are skipped and
# interrupted ones resume, so every script can simply be rerun.
# Environment shared by all scripts: SEEDS, OUT (output_root, default runs), SFDA (the command, default sfda),
# NPROC (set: every run on NPROC processes through torchrun, one per GPU; docs/distributed.md) and TORCHRUN (the
# launcher with its rendezvous flags, default `torchrun --standalone`; for several nodes e.g.
# TORCHRUN="torchrun --nnodes 2 --rdzv-backend c10d --rdzv-endpoint HOST:29500 --rdzv-id JOB").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[1]}")/.."
OUT=${OUT:-runs}
SFDA=${SFDA:-sfda}
QUEUE=()
if [ -n "${NPROC:-}" ] && ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: NPROC must be a number of processes per node (e.g. NPROC=4), got '$NPROC'" >&2; exit 2
fi

launch() {  # launch SFDA-ARGS...: `$SFDA ARGS`, or with NPROC set `$TORCHRUN --nproc_per_node $NPROC -m sfda ARGS`
  if [ -n "${NPROC:-}" ]; then
    ${TORCHRUN:-torchrun --standalone} --nproc_per_node "$NPROC" -m sfda "$@"
  else
    $SFDA "$@"
  fi
}

queue() {  # queue CONFIG...
  local c
  for c in "$@"; do
    [ -f "$c" ] || { echo "error: $c does not exist (check the names in METHODS/TASKS/VARIANTS/...)" >&2; exit 2; }
    QUEUE+=("$c")
  done
}

queue_tasks() {  # queue_tasks BENCH: configs/BENCH/<method>/<task>.yaml for each of $METHODS x $TASKS
  local method task
  for method in $METHODS; do
    for task in $TASKS; do queue "configs/$1/$method/$task.yaml"; done
  done
}

check_variants() {  # stops on a name in $VARIANTS other than base and ns
  local v
  for v in $VARIANTS; do
    case "$v" in base | ns) ;; *) echo "error: unknown variant '$v' in VARIANTS (use base and/or ns)" >&2; exit 2 ;; esac
  done
}

queue_variants() {  # queue_variants PREFIX...: PREFIX.yaml for "base" and PREFIX_ns.yaml for "ns" in $VARIANTS
  local prefix v
  check_variants
  for prefix in "$@"; do
    for v in $VARIANTS; do
      if [ "$v" = ns ]; then queue "${prefix}_ns.yaml"; else queue "$prefix.yaml"; fi
    done
  done
}

with_timm() {  # with_timm NAMES...: the names, plus swin_t when timm is importable (else a note on stderr)
  if python -c "import timm" 2>/dev/null; then echo "$* swin_t"; else
    echo "timm not installed: skipping Swin-T (pip install timm)" >&2; echo "$*"; fi
}

sweep_tasks() {  # sweep_tasks BENCH "DEFAULT TASKS" EXTRA...: the SFDA scripts' whole body
  local bench=$1
  SEEDS=${SEEDS:-"2019 2020 2021"}
  METHODS=${METHODS:-"shot shot_ns"}
  TASKS=${TASKS:-$2}
  shift 2
  queue_tasks "$bench"
  run_queue "$bench" "$@"
}

run_queue() {  # run_queue TABLE_BENCH EXTRA...
  local bench=$1 seed c
  shift
  for seed in $SEEDS; do
    for c in "${QUEUE[@]}"; do
      launch run -c "$c" "seed=$seed" "output_root=$OUT" "$@"
    done
  done
  $SFDA table "$OUT" --benchmark "$bench"
}
