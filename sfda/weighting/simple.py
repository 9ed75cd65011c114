"""Simple per-sample weights to compare NS against (computed from the training pass's own logits)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from ..params import param
from ..registry import WEIGHTERS
from .base import Weighter, WeightInput


def _probs(batch: WeightInput) -> torch.Tensor:
    if batch.logits is None:
        with torch.no_grad():
            return torch.softmax(batch.model(batch.images).float(), dim=1)
    return torch.softmax(batch.logits.float(), dim=1)


@WEIGHTERS.register("confidence")
class Confidence(Weighter):
    """w = (max_k p_k)^power: trust confident predictions (ATDOC-style confidence weights)."""

    @dataclass
    class Params(Weighter.Params):
        power: float = param(1.0, help="exponent of the maximum probability")

    label = "Conf"

    def weights(self, batch: WeightInput) -> torch.Tensor:
        return _probs(batch).max(dim=1).values ** self.hparams.power


@WEIGHTERS.register("entropy")
class EntropyWeight(Weighter):
    """exp: w = exp(-H(p)/log K) (PLUE); linear: w = 1 - H(p)/log K (SHOT's unused weight); cdan: 1 + exp(-H)."""

    @dataclass
    class Params(Weighter.Params):
        form: Literal["exp", "linear", "cdan"] = param("exp", help="exp(-H/log K), 1 - H/log K or 1 + exp(-H)")

    label = "Ent"

    def weights(self, batch: WeightInput) -> torch.Tensor:
        probs = _probs(batch)
        entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=1)
        if self.hparams.form == "cdan":
            return 1.0 + torch.exp(-entropy)
        normalised = entropy / math.log(probs.shape[1])
        if self.hparams.form == "linear":
            return 1.0 - normalised
        return torch.exp(-normalised)


@WEIGHTERS.register("label_confidence")
class LabelConfidence(Weighter):
    """w = p_y, the model's probability of the (pseudo-)label on the sample itself: NS without the composite."""

    label = "LabelConf"

    def weights(self, batch: WeightInput) -> torch.Tensor:
        return _probs(batch).gather(1, batch.targets.view(-1, 1)).squeeze(1)
