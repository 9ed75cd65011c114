# Shared by the run scripts in this folder: sourced by them, not run on its own.
#
# A script queues configs (paths relative to the repository root) with `queue`, then `run_queue BENCH "$@"`
# runs each queued config for each seed of $SEEDS (seeds outermost) with the script's extra arguments
# (KEY=VALUE overrides, --force, ...) and prints `sfda table` for BENCH. Finished runs are skipped and
# interrupted ones resume, so every script can simply be rerun.
# Environment shared by all scripts: SEEDS, OUT (output_root, default runs), SFDA (the command, default sfda).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[1]}")/.."
OUT=${OUT:-runs}
SFDA=${SFDA:-sfda}
QUEUE=()

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

ns_suffix() {  # ns_suffix VARIANT: "" for base, "_ns" for ns (after check_variants)
  if [ "$1" = ns ]; then echo "_ns"; fi
}

with_timm() {  # with_timm NAMES...: the names, plus swin_t when timm is importable (else a note on stderr)
  if python -c "import timm" 2>/dev/null; then echo "$* swin_t"; else
    echo "timm not installed: skipping Swin-T (pip install timm)" >&2; echo "$*"; fi
}

run_queue() {  # run_queue TABLE_BENCH EXTRA...
  local bench=$1 seed c
  shift
  for seed in $SEEDS; do
    for c in "${QUEUE[@]}"; do
      $SFDA run -c "$c" "seed=$seed" "output_root=$OUT" "$@"
    done
  done
  $SFDA table "$OUT" --benchmark "$bench"
}
