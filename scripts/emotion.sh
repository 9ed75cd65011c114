#!/usr/bin/env bash
# NS paper Table III: the six visual-emotion datasets with six ImageNet-pretrained backbones, fine-tuned for
# 10 epochs without NS ("base") and with NS-LF ("ns"), for each seed; then the accuracy table (test lists).
#
#   scripts/emotion.sh                                 # every dataset and backbone, seeds 2024 2025 2026
#   DATASETS="fi" BACKBONES="resnet50" SEEDS="2024" scripts/emotion.sh device=cuda:0
#
# Environment: SEEDS, DATASETS (twitter1 twitter2 flickr instagram fi emoset), BACKBONES (alexnet vgg16 resnet50
# densenet121 vit_b_16, plus swin_t if timm is importable), VARIANTS (base ns), OUT (output_root, default runs),
# SFDA. Extra arguments are config overrides for every run.
# Data: $SFDA_DATA/emotion/<dataset>/ with your split lists lists/train.txt and lists/test.txt ('<path> <label>',
# paths relative to that folder); e.g. `sfda lists make --root $SFDA_DATA/emotion/fi --domains train test`
# for a train/<class>/, test/<class>/ layout.
source "$(dirname "$0")/_lib.sh"
SEEDS=${SEEDS:-"2024 2025 2026"}
VARIANTS=${VARIANTS:-"base ns"}
BACKBONES=${BACKBONES:-$(with_timm alexnet vgg16 resnet50 densenet121 vit_b_16)}
for ds in ${DATASETS:-twitter1 twitter2 flickr instagram fi emoset}; do
  for bb in $BACKBONES; do queue_variants "configs/emotion/$ds/$bb"; done
done
run_queue emotion "$@"
