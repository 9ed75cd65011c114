"""CE reshaped by a function of p_y: the focal loss (a modulating factor) and Poly-1 (a polynomial term).

Both are CE in a limit (focal gamma 0, Poly-1 eps 0); the Poly-1 paper writes CE and the focal loss as
polynomial series in (1 - p_y) and Poly-1 perturbs the first coefficient. Notation: z logits,
log p = log_softmax(z), y the (pseudo-)label, p_y its probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..params import param
from ..registry import LOSSES
from .base import Loss, LossParams
from .functional import as_float, log1m_prob, one_minus_p, pick


@LOSSES.register("focal", aliases=("focal_loss", "fl"))
class FocalLoss(Loss):
    """Focal loss (Lin et al., ICCV 2017), softmax form: -alpha_y (1 - p_y)^gamma log p_y.

    gamma = 2 is the paper's default (the noisy-label repositories use 0.5); gamma = 0 is CE. ``alpha``:
    None (all 1) or a list of K per-class weights. The factor is exp(gamma * log(1 - p_y)) with
    log(1 - p_y) from logsumexp over the other classes, so value and gradient stay finite at p_y -> 1 even
    for gamma < 1 (where d/dp (1-p)^gamma is infinite). ``detach_factor: true`` treats the factor as a
    constant in backprop, as the noisy-label repositories do (not the paper's gradient).
    """

    @dataclass
    class Params(LossParams):
        gamma: float = param(2.0, low=0.0, help="focusing exponent of (1 - p_y); 0 is CE")
        alpha: Optional[List[float]] = param(None, low=0.0, help="null or one weight >= 0 per class")  # noqa: RUF009
        detach_factor: bool = param(False, help="treat (1 - p_y)^gamma as a constant in backprop")

    hparams: Params
    class_alpha: Optional[torch.Tensor]

    def __init__(self, num_classes: int, hparams: Optional[Params] = None, **overrides: Any) -> None:
        super().__init__(num_classes, hparams, **overrides)
        alpha = self.hparams.alpha
        if alpha is not None and len(alpha) != num_classes:
            raise ConfigError(
                f"loss '{self.name}': 'alpha' must list one weight per class ({num_classes}), got "
                f"{len(alpha)}; set method.pl_loss.alpha (or method.loss.alpha) to null or "
                f"{num_classes} weights"
            )
        # a constant of the configuration, moved with the loss but not part of its state
        self.register_buffer("class_alpha", None if alpha is None else torch.tensor(alpha), persistent=False)

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        gamma = self.hparams.gamma
        z = as_float(logits)
        lp_y = pick(F.log_softmax(z, dim=1), targets)
        if gamma == 0:
            loss = -lp_y
        else:
            log1m = log1m_prob(z, targets)
            if self.hparams.detach_factor:
                log1m = log1m.detach()
            loss = -torch.exp(gamma * log1m) * lp_y
        if self.class_alpha is not None:
            loss = self.class_alpha.to(loss.device)[targets] * loss
        return loss


@LOSSES.register("poly", aliases=("poly1", "polyloss"))
class PolyLoss(Loss):
    """Poly-1 (Leng et al., ICLR 2022): -log p_y + eps (1 - p_y), eps = 2.

    eps = 2 is the paper's ImageNet classification value (-1 for detection; eps >= -1); eps = 0 is CE."""

    @dataclass
    class Params(LossParams):
        eps: float = param(2.0, low=-1.0, help="coefficient of the (1 - p_y) term; 0 is CE")

    hparams: Params

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        lp_y = pick(F.log_softmax(as_float(logits), dim=1), targets)
        return -lp_y + self.hparams.eps * one_minus_p(lp_y)
