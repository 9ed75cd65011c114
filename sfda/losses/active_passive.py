"""Active + passive losses: SCE (Wang et al., ICCV 2019) and APL (Ma et al., ICML 2020), and their terms alone.

An active loss raises p_y (CE, NCE, NFL), a passive one lowers the other classes' probabilities (RCE, MAE);
APL shows that a normalised active term plus a passive term is robust to label noise. Notation: z logits,
log p = log_softmax(z), y the (pseudo-)label, p_y its probability, K the classes.

RCE with a one-hot label and log 0 := A is -A (1 - p_y); A = ln(1e-4) = -9.21, the value all reference code
uses (the one-hot label clipped at 1e-4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F

from ..params import param
from ..registry import LOSSES
from .base import Loss, LossParams
from .functional import as_float, nce, nfl, one_minus_p, pick

LOG_1E4 = math.log(1e-4)  # the RCE code's A (one-hot clipped at 1e-4): -9.2103


def rce(log_py: torch.Tensor, log_zero: float) -> torch.Tensor:
    """Reverse CE with a one-hot label and log 0 := ``log_zero`` (A): -A (1 - p_y)."""
    return -log_zero * one_minus_p(log_py)


def _alpha(default: float) -> Any:
    return param(default, low=0.0, help="weight of the active term")


def _beta(default: float) -> Any:
    return param(default, low=0.0, help="weight of the passive term")


def _log_zero() -> Any:
    return param(LOG_1E4, high=0.0, high_open=True, help="RCE's log 0 (the reference code's ln 1e-4)")


def _gamma() -> Any:
    return param(0.5, low=0.0, help="NFL's focusing exponent (factors detached)")


def _mae_scale() -> Any:
    return param(1.0, low=0.0, help="MAE = mae_scale (1 - p_y); 1 is APL's reduced MAE, 2 the paper's")


@LOSSES.register("sce", aliases=("symmetric_cross_entropy",))
class SymmetricCrossEntropy(Loss):
    """SCE (Wang et al., ICCV 2019): alpha (-log p_y) + beta * RCE, RCE = -A (1 - p_y).

    alpha = 0.1, beta = 1.0 (CIFAR-10; CIFAR-100: 6.0, 0.1). A = ln(1e-4) = -9.21, the value all reference
    code uses (one-hot clipped at 1e-4); the paper quotes A = -4, which only rescales beta.
    """

    @dataclass
    class Params(LossParams):
        alpha: float = param(0.1, low=0.0, help="weight of CE")
        beta: float = param(1.0, low=0.0, help="weight of RCE")
        A: float = _log_zero()

    hparams: Params

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        hp = self.hparams
        lp_y = pick(F.log_softmax(as_float(logits), dim=1), targets)
        return hp.alpha * (-lp_y) + hp.beta * rce(lp_y, hp.A)


# ---- APL: alpha * (NCE or NFL) + beta * (RCE or MAE) ---------------------------------------------------------


@dataclass
class ActivePassiveParams(LossParams):
    alpha: float = _alpha(1.0)
    beta: float = _beta(1.0)


class _ActivePassive(Loss):
    """alpha * active + beta * passive (Ma et al., ICML 2020, "APL"); subclasses name the two terms."""

    hparams: ActivePassiveParams

    def active(self, log_p: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def passive(self, log_py: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        lp = F.log_softmax(as_float(logits), dim=1)
        lp_y = pick(lp, targets)  # picked first: fixes the order in which autograd sums into log p
        return self.hparams.alpha * self.active(lp, targets) + self.hparams.beta * self.passive(lp_y)


@LOSSES.register("nce_rce", aliases=("apl",))
class NCEandRCE(_ActivePassive):
    """APL NCE+RCE (Ma et al., ICML 2020): alpha log p_y / sum_k log p_k + beta (-A)(1 - p_y).

    alpha = beta = 1 (CIFAR-10; CIFAR-100: alpha 10, beta 0.1), A = ln(1e-4) as the code."""

    @dataclass
    class Params(ActivePassiveParams):
        A: float = _log_zero()

    hparams: Params

    def active(self, log_p: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nce(log_p, targets)

    def passive(self, log_py: torch.Tensor) -> torch.Tensor:
        return rce(log_py, self.hparams.A)


@LOSSES.register("nce_mae")
class NCEandMAE(_ActivePassive):
    """APL NCE+MAE: alpha * NCE + beta * mae_scale (1 - p_y); alpha = beta = 1 (CIFAR-10; CIFAR-100: 10, 1).
    mae_scale 1 is the APL code's "reduced MAE" (the paper's MAE sum_k |p_k - e_yk| = 2(1 - p_y))."""

    @dataclass
    class Params(ActivePassiveParams):
        mae_scale: float = _mae_scale()

    hparams: Params

    def active(self, log_p: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nce(log_p, targets)

    def passive(self, log_py: torch.Tensor) -> torch.Tensor:
        return self.hparams.mae_scale * one_minus_p(log_py)


@LOSSES.register("nfl_rce")
class NFLandRCE(_ActivePassive):
    """APL NFL+RCE: alpha NFL(gamma) + beta RCE; alpha = beta = 1, gamma = 0.5.

    CIFAR-100: alpha 10, beta 0.1. NFL's (1 - p)^gamma factors are detached, as in the reference."""

    @dataclass
    class Params(ActivePassiveParams):
        gamma: float = _gamma()
        A: float = _log_zero()

    hparams: Params

    def active(self, log_p: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nfl(log_p, targets, self.hparams.gamma)

    def passive(self, log_py: torch.Tensor) -> torch.Tensor:
        return rce(log_py, self.hparams.A)


@LOSSES.register("nfl_mae")
class NFLandMAE(_ActivePassive):
    """APL NFL+MAE: alpha NFL(gamma) + beta mae_scale (1 - p_y); alpha = beta = 1, gamma = 0.5.

    CIFAR-100: alpha 10, beta 1."""

    @dataclass
    class Params(ActivePassiveParams):
        gamma: float = _gamma()
        mae_scale: float = _mae_scale()

    hparams: Params

    def active(self, log_p: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nfl(log_p, targets, self.hparams.gamma)

    def passive(self, log_py: torch.Tensor) -> torch.Tensor:
        return self.hparams.mae_scale * one_minus_p(log_py)


# ---- the terms alone ------------------------------------------------------------------------------------------


@LOSSES.register("nce")
class NormalizedCE(Loss):
    """NCE alone (APL's active term): log p_y / sum_k log p_k, in [0, 1]."""

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        return nce(F.log_softmax(as_float(logits), dim=1), targets)


@LOSSES.register("nfl")
class NormalizedFocal(Loss):
    """NFL alone (APL's active term), gamma = 0.5, detached modulating factors."""

    @dataclass
    class Params(LossParams):
        gamma: float = _gamma()

    hparams: Params

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        return nfl(F.log_softmax(as_float(logits), dim=1), targets, self.hparams.gamma)


@LOSSES.register("rce", aliases=("reverse_cross_entropy",))
class ReverseCE(Loss):
    """RCE alone (SCE/APL's passive term): -A (1 - p_y), A = ln(1e-4)."""

    @dataclass
    class Params(LossParams):
        A: float = _log_zero()

    hparams: Params

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        return rce(pick(F.log_softmax(as_float(logits), dim=1), targets), self.hparams.A)


@LOSSES.register("mae", aliases=("mean_absolute_error",))
class MeanAbsoluteError(Loss):
    """MAE: scale (1 - p_y); scale 2 is sum_k |p_k - e_yk| (the paper's), 1 the APL code's reduced form."""

    @dataclass
    class Params(LossParams):
        scale: float = param(2.0, low=0.0, low_open=True, help="MAE = scale (1 - p_y); 2 is sum_k |p_k - e_yk|")

    hparams: Params

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        return self.hparams.scale * one_minus_p(pick(F.log_softmax(as_float(logits), dim=1), targets))
