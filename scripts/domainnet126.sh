#!/usr/bin/env bash
# The 7 DomainNet-126 shifts (ResNet-50; AdaContrast's source recipe, SHOT's adaptation settings).
# Source models are trained once per source domain and seed (then reused); each method adapts each task for
# each seed; the results table is printed at the end.
#
#   scripts/domainnet126.sh                       # SHOT and SHOT+NS-WS, seeds 2019 2020 2021
#   SEEDS="2020" METHODS="shot" scripts/domainnet126.sh
#   METHODS="adacontrast adacontrast_ns plue plue_ns" scripts/domainnet126.sh   # the contrastive methods, with and without NS
#   METHODS="tpds tpds_ns" scripts/domainnet126.sh   # TPDS, with and without NS (TPDS+NS-WS: an sfda variant)
#   scripts/domainnet126.sh data.root=/data/domainnet-126 device=cuda:1     # extra overrides for every run
#
# Environment: SEEDS, METHODS (folders under configs/domainnet-126/), TASKS, OUT (output_root, default runs), SFDA.
# Data: $SFDA_DATA/domainnet-126/<domain>/<class>/<file>; check it with `sfda lists verify -c domainnet-126/source/real`.
# A run that already finished is skipped; an interrupted one resumes, so the script can simply be rerun.
source "$(dirname "$0")/_lib.sh"
sweep_tasks domainnet-126 "R_C R_P P_C C_S S_P R_S P_R" "$@"
