"""SHOT's bottleneck and weight-normalised classifier, with SHOT's parameter names.

State-dict keys match SHOT's released checkpoints: the bottleneck has ``bottleneck.*`` (Linear) and ``bn.*``
(BatchNorm1d); the classifier has ``fc.weight_g``, ``fc.weight_v`` and ``fc.bias``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class WeightNormLinear(nn.Module):
    """Linear layer with weight = g * v / ||v|| per output row (``torch.nn.utils.weight_norm``, dim 0).

    A plain module (no forward hooks), so it deep-copies and pickles cleanly.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        lin = nn.Linear(in_features, out_features, bias=bias)  # PyTorch's default init for v, as in SHOT
        self.weight_v = nn.Parameter(lin.weight.detach().clone())
        self.weight_g = nn.Parameter(lin.weight.detach().norm(dim=1, keepdim=True).clone())
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None  # SHOT zeroes the bias
        self.in_features, self.out_features = in_features, out_features

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_g * self.weight_v / self.weight_v.norm(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Bottleneck(nn.Module):
    """Linear(in, dim) [+ BatchNorm1d] [+ Dropout]; SHOT's ``feat_bottleneck`` (ReLU is never applied)."""

    def __init__(self, in_features: int, dim: int = 256, kind: str = "bn", dropout: float = 0.0):
        super().__init__()
        self.bottleneck = nn.Linear(in_features, dim)
        nn.init.xavier_normal_(self.bottleneck.weight)
        nn.init.zeros_(self.bottleneck.bias)
        self.bn = nn.BatchNorm1d(dim, affine=True) if kind == "bn" else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.out_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bottleneck(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.dropout is not None:
            x = self.dropout(x)
        return x


class Classifier(nn.Module):
    """SHOT's ``feat_classifier``: ``fc`` is weight-normalised (``wn``) or a plain Linear (``linear``)."""

    def __init__(self, in_features: int, num_classes: int, kind: str = "wn"):
        super().__init__()
        if kind == "wn":
            self.fc = WeightNormLinear(in_features, num_classes)
        elif kind == "linear":
            self.fc = nn.Linear(in_features, num_classes)
            nn.init.xavier_normal_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)
        else:
            raise ValueError(f"model.classifier must be 'wn' or 'linear', got '{kind}'")
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)
