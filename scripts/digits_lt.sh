#!/usr/bin/env bash
# digits-LT (NS paper Table V at CPU size, docs/results/digits-lt.md): supervised LeNet on long-tailed MNIST-5k
# at imbalance 100, 50, 10 and the balanced set (1), for every row (the baseline, the 12 losses and 3 samplers
# of Table V, NGL, the EDL-style learned loss, NS-WS and NS-LF) and seed; then the table (MNIST-5k test split, and UCI digits beside it).
#
#   scripts/digits_lt.sh                                              # everything, seeds 2019 2020 2021
#   METHODS="baseline ns_lf" TASKS="imb100" SEEDS="2019" scripts/digits_lt.sh data.root=/tmp/dd
#
# Environment: SEEDS, METHODS (folders under configs/digits-lt/), TASKS (imb100 imb50 imb10 imb1), OUT (output_root,
# default runs), SFDA. Extra arguments are config overrides for every run. Without a data.root= argument the
# images are built first where the configs look for them (`sfda data digits-lt`: $SFDA_DATA/digits-offline or
# ./data/digits-offline; nothing is done when they are there).
# A new row is a folder configs/digits-lt/<name>/ (as configs/digits-lt/ngl/), its name in METHODS and its label in
# PAPER["digits-lt"]["order"] (sfda/results/paper.py).
source "$(dirname "$0")/_lib.sh"
SEEDS=${SEEDS:-"2019 2020 2021"}
METHODS=${METHODS:-"baseline focal gce ls nlnl sce apl low polyloss anl aul ce_mae ce_ogc cbs srs pbs ngl learned ns_ws ns_lf ns_lf_m4"}
TASKS=${TASKS:-"imb100 imb50 imb10 imb1"}
queue_tasks digits-lt
case " $* " in *" data.root="*) ;; *) $SFDA data digits-lt ;; esac
run_queue digits-lt "$@"
