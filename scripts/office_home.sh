#!/usr/bin/env bash
# Run the 12 Office-Home transfers: source models (trained once per source domain and seed, then reused),
# then each adaptation method, for each seed; print the results table at the end.
#
#   scripts/office_home.sh                       # SHOT and SHOT+NS-WS, seeds 2019 2020 2021
#   SEEDS="2020" METHODS="shot" scripts/office_home.sh
#   METHODS="adacontrast adacontrast_ns plue plue_ns" scripts/office_home.sh   # the contrastive methods, with and without NS
#   METHODS="tpds tpds_ns" scripts/office_home.sh   # TPDS, with and without NS (TPDS+NS-WS: an sfda variant)
#   METHODS="nrc nrc_ns aad aad_ns cowa cowa_ns" scripts/office_home.sh   # the other methods, each with and without NS
#   scripts/office_home.sh data.root=/data/office-home device=cuda:1     # extra overrides for every run
#
# Environment: SEEDS, METHODS (folders under configs/office-home/), TASKS, OUT (output_root, default runs).
# A run that already finished is skipped; an interrupted one resumes, so the script can simply be rerun.
source "$(dirname "$0")/_lib.sh"
sweep_tasks office-home "Ar_Cl Ar_Pr Ar_Rw Cl_Ar Cl_Pr Cl_Rw Pr_Ar Pr_Cl Pr_Rw Rw_Ar Rw_Cl Rw_Pr" "$@"
