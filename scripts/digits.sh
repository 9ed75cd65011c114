#!/usr/bin/env bash
# SHOT's standard digit tasks (SVHN->MNIST, USPS->MNIST, MNIST->USPS; torchvision downloads the data into
# $SFDA_DATA/digits on first use) for SHOT and SHOT+NS-WS over seeds; then the results table.
#   SEEDS="2019" METHODS="shot" scripts/digits.sh device=cuda
source "$(dirname "$0")/_lib.sh"
sweep_tasks digits "svhn_mnist usps_mnist mnist_usps" "$@"
