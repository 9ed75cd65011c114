"""The per-sample loss interface.

A loss maps ``(logits, targets)`` to one value per sample (shape ``[N]``); the caller multiplies by sample
weights and reduces. Terms that are not per sample are explicit hooks, called once per batch or per
pseudo-label refresh:

- ``update_labels(labels, num_classes)``: the current (pseudo-)labels of the whole training set, after each
  refresh (class counts for NLNL's weights, resetting truncated GCE's mask, ...);
- ``penalty(model)``: a batch-level term added once (e.g. ANL's L1 penalty on the parameters);
- ``indices`` (dataset indices of the batch) is passed for losses that keep per-sample state.

Losses are computed in float32 even under autocast.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from ..registry import LOSSES


class Loss(nn.Module):
    defaults: dict = {}

    def __init__(self, num_classes: int, **params):
        super().__init__()
        self.num_classes = num_classes
        for k, v in {**self.defaults, **params}.items():
            setattr(self, k, v)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None) -> torch.Tensor:
        raise NotImplementedError

    def update_labels(self, labels: torch.Tensor) -> None:
        """Called with the labels of the whole training set whenever they are (re)computed."""

    def penalty(self, model: nn.Module) -> torch.Tensor | float:
        """A batch-level term added once to the loss (not weighted per sample)."""
        return 0.0


def build_loss(spec, num_classes: int) -> Loss:
    cls = LOSSES.get(spec["name"], key="loss name")
    return cls(num_classes, **{k: v for k, v in spec.items() if k != "name"})
