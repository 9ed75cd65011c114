#!/usr/bin/env bash
# NS paper Table II: CIFAR-10/100 with AlexNet, VGG-19, ResNet-110 and ResNeXt-29 (CIFAR forms), each without
# NS ("base") and with NS-WS ("ns"), for each seed; then the accuracy table (test split, last epoch).
#
#   scripts/cifar.sh                                   # everything, seeds 2024 2025 2026 (the paper's)
#   ARCHS="resnet110" DATASETS="cifar100" SEEDS="2024" scripts/cifar.sh device=cuda:0
#
# Environment: SEEDS, DATASETS (cifar10 cifar100), ARCHS (alexnet vgg19 resnet110 resnext29), VARIANTS (base ns),
# OUT (output_root, default runs), SFDA. Extra arguments are config overrides for every run.
# Data: torchvision downloads CIFAR into $SFDA_DATA/cifar (or ./data/cifar) on first use.
# A run that already finished is skipped; an interrupted one resumes, so the script can simply be rerun.
source "$(dirname "$0")/_lib.sh"
SEEDS=${SEEDS:-"2024 2025 2026"}
VARIANTS=${VARIANTS:-"base ns"}
for ds in ${DATASETS:-cifar10 cifar100}; do
  for arch in ${ARCHS:-alexnet vgg19 resnet110 resnext29}; do queue_variants "configs/cifar/$ds/$arch"; done
done
run_queue cifar "$@"
