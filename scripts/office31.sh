#!/usr/bin/env bash
# The 6 Office-31 transfers (ResNet-50, SHOT's settings; 100 source epochs).
# Source models are trained once per source domain and seed (then reused); each method adapts each task for
# each seed; the results table is printed at the end.
#
#   scripts/office31.sh                       # SHOT and SHOT+NS-WS, seeds 2019 2020 2021
#   SEEDS="2020" METHODS="shot" scripts/office31.sh
#   METHODS="adacontrast adacontrast_ns plue plue_ns" scripts/office31.sh   # the contrastive methods, with and without NS
#   METHODS="tpds tpds_ns" scripts/office31.sh   # TPDS, with and without NS (TPDS+NS-WS: an sfda variant)
#   scripts/office31.sh data.root=/data/office31 device=cuda:1     # extra overrides for every run
#
# Environment: SEEDS, METHODS (folders under configs/office31/), TASKS, OUT (output_root, default runs), SFDA.
# Data: $SFDA_DATA/office31/<domain>/images/<class>/<file>; check it with `sfda lists verify -c office31/source/amazon`.
# A run that already finished is skipped; an interrupted one resumes, so the script can simply be rerun.
source "$(dirname "$0")/_lib.sh"
sweep_tasks office31 "A_D A_W D_A D_W W_A W_D" "$@"
