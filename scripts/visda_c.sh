#!/usr/bin/env bash
# VisDA-C synthetic -> real (ResNet-101, lr 1e-3, mean per-class accuracy; 10 source epochs).
# Source models are trained once per source domain and seed (then reused); each method adapts each task for
# each seed; the results table is printed at the end.
#
#   scripts/visda_c.sh                       # SHOT and SHOT+NS-WS, seeds 2019 2020 2021
#   SEEDS="2020" METHODS="shot" scripts/visda_c.sh
#   METHODS="adacontrast adacontrast_ns plue plue_ns" scripts/visda_c.sh   # the contrastive methods, with and without NS
#   METHODS="tpds tpds_ns" scripts/visda_c.sh   # TPDS, with and without NS (TPDS+NS-WS: an sfda variant)
#   scripts/visda_c.sh data.root=/data/visda-c device=cuda:1     # extra overrides for every run
#
# Environment: SEEDS, METHODS (folders under configs/visda-c/), TASKS, OUT (output_root, default runs), SFDA.
# Data: $SFDA_DATA/visda-c/{train,validation}/<class>/<file>. Make the train list once first:
#   sfda lists make --root $SFDA_DATA/visda-c --domains train --classes-from data_lists/visda-c/validation.txt
# A run that already finished is skipped; an interrupted one resumes, so the script can simply be rerun.
source "$(dirname "$0")/_lib.sh"
sweep_tasks visda-c "T_V" "$@"
