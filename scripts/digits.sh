#!/usr/bin/env bash
# SHOT's standard digit tasks (SVHN->MNIST, USPS->MNIST, MNIST->USPS; torchvision downloads the data into
# $SFDA_DATA/digits on first use) for SHOT and SHOT+NS-WS over seeds; then the results table.
#   SEEDS="2019" METHODS="shot" scripts/digits.sh device=cuda
source "$(dirname "$0")/_lib.sh"
SEEDS=${SEEDS:-"2019 2020 2021"}
METHODS=${METHODS:-"shot shot_ns"}
TASKS=${TASKS:-"svhn_mnist usps_mnist mnist_usps"}
queue_tasks digits
run_queue digits "$@"
