"""Cross-entropy and label smoothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..params import param
from ..registry import LOSSES
from .base import Loss, LossParams


@LOSSES.register("ce", aliases=("cross_entropy",))
class CrossEntropy(Loss):
    """-log p_y."""

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets, reduction="none")


@LOSSES.register("label_smoothing", aliases=("ls",))
class LabelSmoothing(Loss):
    """(1-eps)(-log p_y) + eps * mean_k(-log p_k): target (1-eps) one-hot + eps/K (Szegedy; SHOT's source loss)."""

    @dataclass
    class Params(LossParams):
        eps: float = param(0.1, low=0.0, high=1.0, help="smoothing: eps / K on every class, 1 - eps more on y")

    hparams: Params

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets, reduction="none", label_smoothing=self.hparams.eps)
