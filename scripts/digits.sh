#!/usr/bin/env bash
# SHOT's standard digit tasks (SVHN->MNIST, USPS->MNIST, MNIST->USPS; torchvision downloads the data into
# $SFDA_DATA/digits on first use) for SHOT and SHOT+NS-WS over seeds; then the results table.
#   SEEDS="2019" METHODS="shot" scripts/digits.sh device=cuda
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"2019 2020 2021"}
METHODS=${METHODS:-"shot shot_ns"}
TASKS=${TASKS:-"svhn_mnist usps_mnist mnist_usps"}
OUT=${OUT:-runs}
SFDA=${SFDA:-sfda}
for seed in $SEEDS; do for method in $METHODS; do for task in $TASKS; do
  $SFDA run -c "configs/digits/$method/$task.yaml" "seed=$seed" "output_root=$OUT" "$@"
done; done; done
$SFDA table "$OUT" --benchmark digits
