"""Simple per-sample weights to compare NS against (computed from the training pass's own logits)."""
from __future__ import annotations

import math

import torch

from ..registry import WEIGHTERS
from .base import Weighter


def _probs(batch):
    if batch.logits is None:
        with torch.no_grad():
            return torch.softmax(batch.model(batch.images).float(), dim=1)
    return torch.softmax(batch.logits.float(), dim=1)


@WEIGHTERS.register("confidence")
class Confidence(Weighter):
    """w = (max_k p_k)^power: trust confident predictions (ATDOC-style confidence weights)."""

    label = "Conf"
    defaults = {"power": 1.0, "reduction": "mean"}

    def weights(self, batch):
        return _probs(batch).max(dim=1).values ** self.power


@WEIGHTERS.register("entropy")
class EntropyWeight(Weighter):
    """exp: w = exp(-H(p)/log K) (PLUE); linear: w = 1 - H(p)/log K (SHOT's unused weight); cdan: 1 + exp(-H)."""

    label = "Ent"
    defaults = {"form": "exp", "reduction": "mean"}

    def weights(self, batch):
        p = _probs(batch)
        h = -(p * torch.log(p.clamp_min(1e-12))).sum(dim=1)
        hn = h / math.log(p.shape[1])
        if self.form == "exp":
            return torch.exp(-hn)
        if self.form == "linear":
            return 1.0 - hn
        if self.form == "cdan":
            return 1.0 + torch.exp(-h)
        from ..errors import ConfigError
        raise ConfigError(f"weighting.form must be exp, linear or cdan, got '{self.form}'")


@WEIGHTERS.register("label_confidence")
class LabelConfidence(Weighter):
    """w = p_y, the model's probability of the (pseudo-)label on the sample itself: NS without the composite."""

    label = "LabelConf"
    defaults = {"reduction": "mean"}

    def weights(self, batch):
        return _probs(batch).gather(1, batch.targets.view(-1, 1)).squeeze(1)
