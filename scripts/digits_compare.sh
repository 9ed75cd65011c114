#!/usr/bin/env bash
# The NS paper's Table IV grid (SHOT, the 12 losses, the 3 samplers, SHOT+NS-WS; plus NGL, the EDL-style
# learned loss and the Baikal expression loss, which sfda adds) on the offline digits
# benchmark (MNIST-5k -> UCI by default; build the data once with `sfda data digits-offline`), CPU-sized.
#
#   SFDA_DATA=/tmp/sfda-data scripts/digits_compare.sh 2019          # one seed
#   TASKS="mnist5k_uci uci_mnist5k" scripts/digits_compare.sh         # both directions, seeds 2019-2021
#
# Environment: SEEDS, TASKS, VARIANTS (files under configs/digits/compare/), OUT (output_root, default runs;
# the table covers every finished digits-offline run under it), SFDA (the command, default `sfda`), NPROC
# and TORCHRUN (each run on NPROC processes through torchrun, as in scripts/_lib.sh).
BENCH=digits TABLE_BENCH=digits-offline DEFAULT_TASKS="mnist5k_uci" \
  exec bash "$(dirname "$0")/_compare_grid.sh" "$@"
