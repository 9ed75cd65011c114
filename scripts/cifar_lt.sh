#!/usr/bin/env bash
# NS paper Table V: CIFAR-LT-10/100 at imbalance factors 200, 100, 50 and 10 with ResNet-32, without NS
# ("base", the Baseline row) and with NS-LF ("ns"), for each seed; then the accuracy table (balanced test split).
#
#   scripts/cifar_lt.sh                                # everything, seeds 2024 2025 2026 (the paper's)
#   DATASETS="cifar10" IMBALANCES="100" SEEDS="2024" scripts/cifar_lt.sh device=cuda:0
#
# Environment: SEEDS, DATASETS (cifar10 cifar100), IMBALANCES (200 100 50 10), VARIANTS (base ns),
# OUT (output_root, default runs), SFDA. Extra arguments are config overrides for every run.
# Data: torchvision downloads CIFAR into $SFDA_DATA/cifar (or ./data/cifar) on first use.
source "$(dirname "$0")/_lib.sh"
SEEDS=${SEEDS:-"2024 2025 2026"}
VARIANTS=${VARIANTS:-"base ns"}
for ds in ${DATASETS:-cifar10 cifar100}; do
  for imb in ${IMBALANCES:-200 100 50 10}; do queue_variants "configs/cifar-lt/$ds/imb$imb"; done
done
run_queue cifar-lt "$@"
