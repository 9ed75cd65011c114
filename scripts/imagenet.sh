#!/usr/bin/env bash
# NS paper Table I: ImageNet-1K from scratch (90 epochs) with ResNet-18 and, when timm is installed, Swin-T,
# without NS ("base") and with NS-WS ("ns"), for each seed; then the accuracy table (val split, last epoch).
#
#   scripts/imagenet.sh data.root=/data/imagenet       # seeds 2024 2025 2026 (the paper's)
#   MODELS="resnet18" VARIANTS="ns" SEEDS="2024" scripts/imagenet.sh device=cuda:0 data.num_workers=16
#
# Environment: SEEDS, MODELS (resnet18, plus swin_t if timm is importable), VARIANTS (base ns),
# OUT (output_root, default runs), SFDA. Extra arguments are config overrides for every run.
# Data: your copy in the ImageFolder layout, $SFDA_DATA/imagenet/{train,val}/<wnid>/<image> (val sorted into
# class folders), or data.root=DIR.
source "$(dirname "$0")/_lib.sh"
SEEDS=${SEEDS:-"2024 2025 2026"}
VARIANTS=${VARIANTS:-"base ns"}
for model in ${MODELS:-$(with_timm resnet18)}; do queue_variants "configs/imagenet/$model"; done
run_queue imagenet "$@"
