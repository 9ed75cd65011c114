#!/usr/bin/env bash
# Run the 12 Office-Home transfers: source models (trained once per source domain and seed, then reused),
# then each adaptation method, for each seed; print the results table at the end.
#
#   scripts/office_home.sh                       # SHOT and SHOT+NS-WS, seeds 2019 2020 2021
#   SEEDS="2020" METHODS="shot" scripts/office_home.sh
#   scripts/office_home.sh data.root=/data/office-home device=cuda:1     # extra overrides for every run
#
# Environment: SEEDS, METHODS (folders under configs/office-home/), TASKS, OUT (output_root, default runs).
# A run that already finished is skipped; an interrupted one resumes, so the script can simply be rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"2019 2020 2021"}
METHODS=${METHODS:-"shot shot_ns"}
TASKS=${TASKS:-"Ar_Cl Ar_Pr Ar_Rw Cl_Ar Cl_Pr Cl_Rw Pr_Ar Pr_Cl Pr_Rw Rw_Ar Rw_Cl Rw_Pr"}
OUT=${OUT:-runs}
SFDA=${SFDA:-sfda}
for seed in $SEEDS; do
  for method in $METHODS; do
    for task in $TASKS; do
      $SFDA run -c "configs/office-home/$method/$task.yaml" "seed=$seed" "output_root=$OUT" "$@"
    done
  done
done
$SFDA table "$OUT" --benchmark office-home
