"""Active negative losses (Ye et al., NeurIPS 2023, "ANL"): a normalised active loss plus a normalised
negative loss, with an L1 penalty on the parameters in place of weight decay.

Notation: log p = log_softmax(z), y the (pseudo-)label, p_y its probability, K the classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..params import param
from ..registry import LOSSES
from .base import Loss, LossParams
from .functional import as_float, nce, nfl, one_minus_p, pick


@dataclass
class ActiveNegativeParams(LossParams):
    alpha: float = param(5.0, low=0.0, help="weight of the active term")
    beta: float = param(5.0, low=0.0, help="weight of the normalised negative term")
    delta: float = param(5e-5, low=0.0, help="weight of the L1 penalty on the trainable parameters")


def _min_prob() -> Any:
    return param(1e-7, low=0.0, high=1.0, low_open=True, high_open=True, help="clamp of p_k in the negative term")


class _ActiveNegative(Loss):
    """alpha * active + beta * normalised negative loss (per sample) + delta * ||theta||_1 (``penalty``).

    The L1 penalty is not per sample: it is returned by ``penalty(model)``, which the method adds once per
    batch, unweighted. It runs over the model's trainable parameters (the reference sums all parameters;
    frozen ones only add a constant). The ANL configs set weight decay to 0 (L1 replaces L2); the SFDA
    configs here keep the method's weight decay unless ``optim.weight_decay`` is overridden.
    """

    hparams: ActiveNegativeParams

    def terms(self, log_p: torch.Tensor, targets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(active, negative) per sample."""
        raise NotImplementedError

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        active, negative = self.terms(F.log_softmax(as_float(logits), dim=1), targets)
        return self.hparams.alpha * active + self.hparams.beta * negative

    def penalty(self, model: nn.Module) -> Union[torch.Tensor, float]:
        delta = self.hparams.delta
        if delta == 0:
            return 0.0
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            return 0.0
        return delta * torch.stack([p.float().abs().sum() for p in params]).sum()


@LOSSES.register("anl_ce", aliases=("anl",))
class ANLCE(_ActiveNegative):
    """ANL-CE (Ye et al., NeurIPS 2023): alpha NCE + beta NNCE (per sample) + delta ||theta||_1 (penalty).

    NNCE = 1 - t_y / sum_k t_k with t_k = A + log max(p_k, min_prob), A = -log(min_prob). alpha 5, beta 5,
    delta 5e-5, min_prob 1e-7 (CIFAR-10; CIFAR-100: 10, 1, 5e-7)."""

    @dataclass
    class Params(ActiveNegativeParams):
        min_prob: float = _min_prob()

    hparams: Params

    def terms(self, log_p: torch.Tensor, targets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        log_min = math.log(self.hparams.min_prob)
        shifted = log_p.clamp_min(log_min) - log_min  # A + log max(p_k, min_prob) in [0, A], A = -log(min_prob)
        return nce(log_p, targets), 1.0 - pick(shifted, targets) / shifted.sum(dim=1)


@LOSSES.register("anl_fl")
class ANLFL(_ActiveNegative):
    """ANL-FL (Ye et al., NeurIPS 2023): alpha NFL + beta NNFL (per sample) + delta ||theta||_1 (penalty).

    NNFL = 1 - (A_FL - FL_y) / (K A_FL - sum_k FL_k), A_FL = -(1 - min_prob)^gamma log(min_prob). alpha 5,
    beta 5, delta 5e-5, gamma 0.5 (CIFAR-10; CIFAR-100: 10, 1, 5e-7)."""

    @dataclass
    class Params(ActiveNegativeParams):
        gamma: float = param(0.5, low=0.0, help="focusing exponent (factors detached)")
        min_prob: float = _min_prob()

    hparams: Params

    def terms(self, log_p: torch.Tensor, targets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        gamma, min_prob = self.hparams.gamma, self.hparams.min_prob
        log_min = math.log(min_prob)
        # FL_k = -(1 - p_k)^gamma log max(p_k, min_prob), the factor detached
        focal = -one_minus_p(log_p.detach()).clamp_min(0.0).pow(gamma) * log_p.clamp_min(log_min)
        focal_max = -((1.0 - min_prob) ** gamma) * log_min
        negative = 1.0 - (focal_max - pick(focal, targets)) / (log_p.shape[1] * focal_max - focal.sum(dim=1))
        return nfl(log_p, targets, gamma), negative
