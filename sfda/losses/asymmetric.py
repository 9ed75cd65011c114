"""Asymmetric loss functions (Zhou et al., ICML 2021, "ALFs"), alone and combined with NCE.

An asymmetric loss of u = p_y is robust to label noise without being symmetric; the paper pairs each with
NCE as the active term. Notation: log p = log_softmax(z), y the (pseudo-)label, u = p_y.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F

from ..params import param
from ..registry import LOSSES
from .base import Loss, LossParams
from .functional import as_float, nce, pick


def agce(u: torch.Tensor, a: float, q: float) -> torch.Tensor:
    """Asymmetric GCE: ((a + 1)^q - (a + u)^q) / q."""
    return ((a + 1.0) ** q - (a + u).pow(q)) / q


def aul(u: torch.Tensor, a: float, q: float) -> torch.Tensor:
    """Asymmetric unhinged loss: ((a - u)^q - (a - 1)^q) / q, a > 1."""
    return ((a - u).pow(q) - (a - 1.0) ** q) / q


def ael(u: torch.Tensor, a: float) -> torch.Tensor:
    """Asymmetric exponential loss: exp(-u / a)."""
    return torch.exp(-u / a)


def _a(default: float, low: float = 0.0) -> Any:
    return param(default, low=low, low_open=True, help="the offset a" + (" (> 1)" if low else ""))


def _q(default: float) -> Any:
    return param(default, low=0.0, low_open=True, help="the exponent q")


class _Asymmetric(Loss):
    """The asymmetric term of u = p_y alone; NCE combinations override ``forward``."""

    def asymmetric(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        lp = F.log_softmax(as_float(logits), dim=1)
        return self.asymmetric(torch.exp(pick(lp, targets)))


@LOSSES.register("agce")
class AGCE(_Asymmetric):
    """Asymmetric GCE: ((a + 1)^q - (a + p_y)^q) / q, a = 0.6, q = 0.6 (ALFs, CIFAR-10/100)."""

    @dataclass
    class Params(LossParams):
        a: float = _a(0.6)
        q: float = _q(0.6)

    hparams: Params

    def asymmetric(self, u: torch.Tensor) -> torch.Tensor:
        return agce(u, self.hparams.a, self.hparams.q)


@LOSSES.register("aul")
class AUL(_Asymmetric):
    """Asymmetric unhinged loss: ((a - p_y)^q - (a - 1)^q) / q, a = 5.5 (> 1), q = 3 (ALFs, CIFAR-10/100)."""

    @dataclass
    class Params(LossParams):
        a: float = _a(5.5, low=1.0)
        q: float = _q(3.0)

    hparams: Params

    def asymmetric(self, u: torch.Tensor) -> torch.Tensor:
        return aul(u, self.hparams.a, self.hparams.q)


@LOSSES.register("ael")
class AEL(_Asymmetric):
    """Asymmetric exponential loss: exp(-p_y / a), a = 2.5 (ALFs, CIFAR-10/100)."""

    @dataclass
    class Params(LossParams):
        a: float = _a(2.5)

    hparams: Params

    def asymmetric(self, u: torch.Tensor) -> torch.Tensor:
        return ael(u, self.hparams.a)


# ---- alpha * NCE + beta * asymmetric ---------------------------------------------------------------------------


@dataclass
class NCEPlusParams(LossParams):
    alpha: float = param(1.0, low=0.0, help="weight of NCE")
    beta: float = param(4.0, low=0.0, help="weight of the asymmetric term")


class _NCEPlusAsymmetric(_Asymmetric):
    hparams: NCEPlusParams

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        lp = F.log_softmax(as_float(logits), dim=1)
        loss = self.asymmetric(torch.exp(pick(lp, targets)))
        return self.hparams.alpha * nce(lp, targets) + self.hparams.beta * loss


@LOSSES.register("nce_agce")
class NCEandAGCE(_NCEPlusAsymmetric):
    """alpha * NCE + beta * AGCE: alpha 1, beta 4, a 6, q 1.5 (ALFs CIFAR-10; CIFAR-100: 10, 0.1, 1.8, 3)."""

    @dataclass
    class Params(NCEPlusParams):
        a: float = _a(6.0)
        q: float = _q(1.5)

    hparams: Params

    def asymmetric(self, u: torch.Tensor) -> torch.Tensor:
        return agce(u, self.hparams.a, self.hparams.q)


@LOSSES.register("nce_aul")
class NCEandAUL(_NCEPlusAsymmetric):
    """alpha * NCE + beta * AUL: alpha 1, beta 4, a 6.3, q 1.5 (ALFs CIFAR-10; CIFAR-100: 10, 0.015, 6, 3).
    The NS paper's Table IV row "AUL"."""

    @dataclass
    class Params(NCEPlusParams):
        a: float = _a(6.3, low=1.0)
        q: float = _q(1.5)

    hparams: Params

    def asymmetric(self, u: torch.Tensor) -> torch.Tensor:
        return aul(u, self.hparams.a, self.hparams.q)


@LOSSES.register("nce_ael")
class NCEandAEL(_NCEPlusAsymmetric):
    """alpha * NCE + beta * AEL: alpha 1, beta 4, a 5 (ALFs CIFAR-10; CIFAR-100: 10, 0.1, 1.5)."""

    @dataclass
    class Params(NCEPlusParams):
        a: float = _a(5.0)

    hparams: Params

    def asymmetric(self, u: torch.Tensor) -> torch.Tensor:
        return ael(u, self.hparams.a)
