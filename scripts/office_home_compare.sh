#!/usr/bin/env bash
# The NS paper's Table IV grid on Office-Home: 12 tasks x {SHOT, SHOT with each of the 12 losses (Focal, GCE,
# LS, NLNL, SCE, APL, LOW, PolyLoss, ANL, AUL, CE+MAE, CE+OGC) as its pseudo-label loss, SHOT with each of the
# 3 samplers (CBS, SRS, PBS), SHOT with NGL, the EDL-style learned loss and the Baikal expression loss (added
# by sfda, not in the paper), SHOT+NS-WS} for each seed; then `sfda table` (published rows under ours).
#
#   scripts/office_home_compare.sh                          # seeds 2019 2020 2021
#   scripts/office_home_compare.sh 2020 device=cuda:1       # one seed, an override for every run
#   SEEDS="2019 2020" TASKS="Ar_Cl Cl_Pr" VARIANTS="gce cbs" OUT=runs/compare scripts/office_home_compare.sh
#
# Environment: SEEDS, TASKS, VARIANTS (files under configs/office-home/compare/), OUT (output_root, default
# runs; the table covers every finished Office-Home run under it), SFDA (the command, default `sfda`), NPROC
# and TORCHRUN (each run on NPROC processes through torchrun, as in scripts/_lib.sh).
# Images: $SFDA_DATA/office-home (or data.root=DIR).
BENCH=office-home TABLE_BENCH=office-home \
DEFAULT_TASKS="Ar_Cl Ar_Pr Ar_Rw Cl_Ar Cl_Pr Cl_Rw Pr_Ar Pr_Cl Pr_Rw Rw_Ar Rw_Cl Rw_Pr" \
  exec bash "$(dirname "$0")/_compare_grid.sh" "$@"
