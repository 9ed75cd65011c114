"""Cross-entropy and label smoothing."""
from __future__ import annotations

import torch.nn.functional as F

from ..registry import LOSSES
from .base import Loss


@LOSSES.register("ce", aliases=("cross_entropy",))
class CrossEntropy(Loss):
    """-log p_y."""

    def forward(self, logits, targets, indices=None):
        return F.cross_entropy(logits.float(), targets, reduction="none")


@LOSSES.register("label_smoothing", aliases=("ls",))
class LabelSmoothing(Loss):
    """(1-eps)(-log p_y) + eps * mean_k(-log p_k): target (1-eps) one-hot + eps/K (Szegedy; SHOT's source loss)."""

    defaults = {"eps": 0.1}

    def forward(self, logits, targets, indices=None):
        return F.cross_entropy(logits.float(), targets, reduction="none", label_smoothing=float(self.eps))
