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
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"2024 2025 2026"}
DATASETS=${DATASETS:-"twitter1 twitter2 flickr instagram fi emoset"}
if [ -z "${BACKBONES:-}" ]; then
  BACKBONES="alexnet vgg16 resnet50 densenet121 vit_b_16"
  if python -c "import timm" 2>/dev/null; then BACKBONES="$BACKBONES swin_t"; else echo "timm not installed: skipping Swin-T (pip install timm)" >&2; fi
fi
VARIANTS=${VARIANTS:-"base ns"}
OUT=${OUT:-runs}
SFDA=${SFDA:-sfda}
for seed in $SEEDS; do
  for ds in $DATASETS; do
    for bb in $BACKBONES; do
      for v in $VARIANTS; do
        suffix=$([ "$v" = ns ] && echo _ns || echo "")
        $SFDA run -c "configs/emotion/$ds/$bb$suffix.yaml" "seed=$seed" "output_root=$OUT" "$@"
      done
    done
  done
done
$SFDA table "$OUT" --benchmark emotion
