"""CE over an eps-softmax plus MAE (Wang et al., NeurIPS 2024, "eps-softmax").

The eps-softmax pt = (p + m e_argmax) / (1 + m) pushes the prediction towards a one-hot vector, which
bounds CE's excess risk under label noise; the paper pairs it with MAE. Notation: z logits,
log p = log_softmax(z), y the (pseudo-)label, p_y its probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..params import param
from ..registry import LOSSES
from .base import Loss, LossParams
from .functional import as_float, one_minus_p, pick


@LOSSES.register("ce_mae", aliases=("ece_mae", "eps_softmax_ce_mae"))
class EpsSoftmaxCEandMAE(Loss):
    """CE_eps + MAE (eps-softmax, Wang et al., NeurIPS 2024): alpha CE(eps-softmax) + beta 2 (1 - p_y).

    Per sample: alpha * -log max(pt_y, min_prob) + beta * mae_scale (1 - p_y), pt = (p + m e_argmax) / (1 + m)
    (the code's ECEandMAE).

    Defaults: alpha 0.01, beta 5, m 1e5 (CIFAR-10, symmetric noise; CIFAR-100 symmetric: alpha 0.1..0.00125
    by noise rate, beta 1, m 1e4), min_prob 1e-8, mae_scale 2 (the code's MAELoss, sum_k |p_k - e_yk|).
    log pt_y is computed in log space: log(m + p_y) - log1p(m) when y is the argmax (the argmax is a
    constant), log p_y - log1p(m) otherwise, then clamped at log(min_prob) (the reference's clamp: no
    gradient below it, which with m = 1e5 is p_y < about 1e-3).
    """

    @dataclass
    class Params(LossParams):
        alpha: float = param(0.01, low=0.0, help="weight of CE over the eps-softmax")
        beta: float = param(5.0, low=0.0, help="weight of MAE")
        m: float = param(1e5, low=0.0, help="the eps-softmax's weight on the argmax class")
        min_prob: float = param(1e-8, low=0.0, high=1.0, low_open=True, high_open=True, help="clamp of pt_y")
        mae_scale: float = param(2.0, low=0.0, help="MAE = mae_scale (1 - p_y); 2 is sum_k |p_k - e_yk|")

    hparams: Params

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        hp = self.hparams
        z = as_float(logits)
        lp = F.log_softmax(z, dim=1)
        lp_y = pick(lp, targets)
        m = hp.m
        is_max = z.argmax(dim=1) == targets
        log_m_plus_p = torch.log(m + torch.exp(lp_y)) if m > 0 else lp_y
        log_pt = torch.where(is_max, log_m_plus_p, lp_y) - math.log1p(m)
        ce_eps = -log_pt.clamp_min(math.log(hp.min_prob))
        return hp.alpha * ce_eps + hp.beta * hp.mae_scale * one_minus_p(lp_y)
