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
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"2024 2025 2026"}
if [ -z "${MODELS:-}" ]; then
  MODELS="resnet18"
  if python -c "import timm" 2>/dev/null; then MODELS="$MODELS swin_t"; else echo "timm not installed: skipping Swin-T (pip install timm)" >&2; fi
fi
VARIANTS=${VARIANTS:-"base ns"}
OUT=${OUT:-runs}
SFDA=${SFDA:-sfda}
for seed in $SEEDS; do
  for model in $MODELS; do
    for v in $VARIANTS; do
      suffix=$([ "$v" = ns ] && echo _ns || echo "")
      $SFDA run -c "configs/imagenet/$model$suffix.yaml" "seed=$seed" "output_root=$OUT" "$@"
    done
  done
done
$SFDA table "$OUT" --benchmark imagenet
