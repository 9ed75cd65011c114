"""Noise-robust per-sample losses, usable as SHOT's pseudo-label loss (``method.pl_loss``) or as the
source-training loss (``method.loss``). Formulas, defaults and references: docs/losses.md and the reference
sheet (losses.md sections 1-3, 5, 6, 8-11, 15a). Every loss returns one float32 value per sample; the
caller multiplies by sample weights and reduces.

Defaults are the references' published settings; where a reference gives several (CIFAR-10 / CIFAR-100),
the class uses the CIFAR-10 setting (the reference repositories' first configuration) and its docstring
lists the other.

Notation: z logits, log p = log_softmax(z), y the (pseudo-)label, p_y its probability, K the classes.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import LOSSES
from .base import Loss
from .functional import (as_float, check, check_number, gce_term, log1m_prob, nce, nfl, one_minus_p, pick)

LOG_1E4 = math.log(1e-4)  # the RCE code's A (one-hot clipped at 1e-4): -9.2103


# ---- Focal, GCE, Poly-1, NGL --------------------------------------------------------------------------

@LOSSES.register("focal", aliases=("focal_loss", "fl"))
class FocalLoss(Loss):
    """Focal loss (Lin et al., ICCV 2017), softmax form: -alpha_y (1 - p_y)^gamma log p_y.

    gamma = 2 is the paper's default (the noisy-label repositories use 0.5); gamma = 0 is CE. ``alpha``:
    None (all 1) or a list of K per-class weights. The factor is exp(gamma * log(1 - p_y)) with
    log(1 - p_y) from logsumexp over the other classes, so value and gradient stay finite at p_y -> 1 even
    for gamma < 1 (where d/dp (1-p)^gamma is infinite). ``detach_factor: true`` treats the factor as a
    constant in backprop, as the noisy-label repositories do (not the paper's gradient).
    """

    defaults = {"gamma": 2.0, "alpha": None, "detach_factor": False}

    def __init__(self, num_classes, **params):
        super().__init__(num_classes, **params)
        check_number(self.name, "gamma", self.gamma, 2.0, low=0.0)
        if self.alpha is not None:
            ok = isinstance(self.alpha, (list, tuple)) and len(self.alpha) == num_classes and all(
                isinstance(a, (int, float)) and not isinstance(a, bool) and a >= 0 for a in self.alpha)
            check(ok, self.name, "alpha", f"must be null or a list of {num_classes} non-negative class weights, "
                  f"got {self.alpha!r}", "null")
            self.register_buffer("class_alpha", torch.tensor([float(a) for a in self.alpha]))
        else:
            self.class_alpha = None

    def forward(self, logits, targets, indices=None):
        z = as_float(logits)
        lp_y = pick(F.log_softmax(z, dim=1), targets)
        if self.gamma == 0:
            loss = -lp_y
        else:
            log1m = log1m_prob(z, targets)
            if self.detach_factor:
                log1m = log1m.detach()
            loss = -torch.exp(self.gamma * log1m) * lp_y
        if self.class_alpha is not None:
            loss = self.class_alpha.to(loss.device)[targets] * loss
        return loss


@LOSSES.register("gce", aliases=("generalized_cross_entropy", "lq"))
class GeneralizedCrossEntropy(Loss):
    """GCE / L_q (Zhang & Sabuncu, NeurIPS 2018): (1 - p_y^q) / q with q in (0, 1]; q = 0.7 (reference).

    q -> 0 gives CE, q = 1 gives 1 - p_y. Computed as -expm1(q log p_y)/q: no clamp of p (the reference
    clamps p at 1e-7, which zeroes the gradient below it) and exact for small q.
    """

    defaults = {"q": 0.7}

    def __init__(self, num_classes, **params):
        super().__init__(num_classes, **params)
        check_number(self.name, "q", self.q, 0.7, low=0.0, high=1.0, low_open=True)

    def forward(self, logits, targets, indices=None):
        return gce_term(pick(F.log_softmax(as_float(logits), dim=1), targets), float(self.q))


@LOSSES.register("truncated_gce", aliases=("tgce", "truncated_lq"))
class TruncatedGCE(Loss):
    """Truncated L_q (Zhang & Sabuncu): L_q(p_y) if kept, the constant L_q(k) if pruned (p_y <= k).

    The per-index keep mask m_i = 1[p_y > k] (q = 0.7, k = 0.5, as the reference) is state held by the loss,
    indexed by the dataset ``indices`` passed with each batch (without indices it is plain GCE). Loss value:
    m_i L_q(p_y) + (1 - m_i) L_q(k), the paper's L_trunc; the unofficial reference code returns
    m_i (L_q(p_y) - L_q(k)), which differs by a constant with the same gradient.

    Schedule, SFDA adaptation: the reference (ACS) recomputes the mask over the whole training set every 10
    epochs from epoch 40 (of 120) with a separate pass. Here each sample keeps its softmax output from its
    last training forward pass; when the sample comes up again its mask is recomputed from that output
    against its *current* label: from its ``start_prune``-th visit on, every ``prune_every`` visits (one
    visit = one epoch with plain shuffling), and at its first visit after a pseudo-label refresh
    (``update_labels`` marks every mask for recomputation, so a mask never refers to an old label; before
    ``start_prune`` visits a sample is never pruned). With the defaults
    (start_prune 1, prune_every 1) the mask is refreshed every epoch, i.e. on every pseudo-label refresh of
    SHOT, from the outputs of the epoch before. Samples seen for the first time are kept.
    """

    defaults = {"q": 0.7, "k": 0.5, "start_prune": 1, "prune_every": 1}

    def __init__(self, num_classes, **params):
        super().__init__(num_classes, **params)
        check_number(self.name, "q", self.q, 0.7, low=0.0, high=1.0, low_open=True)
        check_number(self.name, "k", self.k, 0.5, low=0.0, high=1.0, high_open=True)
        check_number(self.name, "start_prune", self.start_prune, 1, low=1, integer=True)
        check_number(self.name, "prune_every", self.prune_every, 1, low=1, integer=True)
        # per-index state, grown to the training-set size on first use (module extra state, not buffers,
        # because its size is not known when the loss is built)
        self.mask = torch.ones(0)
        self.record = torch.zeros(0, num_classes)
        self.visits = torch.zeros(0, dtype=torch.long)
        self.due = torch.zeros(0, dtype=torch.bool)

    def get_extra_state(self):
        return {"mask": self.mask, "record": self.record, "visits": self.visits, "due": self.due}

    def set_extra_state(self, state):
        self.mask, self.record, self.visits, self.due = state["mask"], state["record"], state["visits"], state["due"]

    def _grow(self, n: int, device) -> None:
        device = torch.device(device)
        if self.mask.device != device:
            self.mask, self.record = self.mask.to(device), self.record.to(device)
            self.visits, self.due = self.visits.to(device), self.due.to(device)
        old = self.mask.numel()
        if n <= old:
            return

        def grow(t, fill):
            return torch.cat([t, torch.full((n - old, *t.shape[1:]), fill, dtype=t.dtype, device=device)])

        self.mask, self.record = grow(self.mask, 1.0), grow(self.record, 0.0)
        self.visits, self.due = grow(self.visits, 0), grow(self.due, False)

    def update_labels(self, labels):
        """A (pseudo-)label refresh: size the state to the training set, recompute every mask on next use."""
        self._grow(int(labels.numel()), labels.device)
        self.due.fill_(True)

    def forward(self, logits, targets, indices=None):
        lp_y = pick(F.log_softmax(as_float(logits), dim=1), targets)
        lq = gce_term(lp_y, float(self.q))
        if indices is None:
            return lq
        idx = indices.long()
        if self.mask.numel() == 0 or idx.device.type == "cpu" or self.mask.device != idx.device:
            self._grow(int(idx.max().item()) + 1, lp_y.device)  # sized by update_labels otherwise
        with torch.no_grad():
            v = self.visits[idx]
            scheduled = (v >= self.start_prune) & ((v - self.start_prune) % self.prune_every == 0)
            redo = (scheduled | self.due[idx]) & (v >= self.start_prune)
            fresh = (pick(self.record[idx], targets) > self.k).float()
            self.mask[idx] = torch.where(redo, fresh, self.mask[idx])
            self.due[idx] = False
            self.record[idx] = torch.softmax(as_float(logits).detach(), dim=1)
            self.visits[idx] += 1
            m = self.mask[idx]
        lq_k = (1.0 - float(self.k) ** float(self.q)) / float(self.q)
        return m * lq + (1.0 - m) * lq_k

    def kept_fraction(self) -> float:
        seen = self.visits > 0
        return float(self.mask[seen].mean().item()) if bool(seen.any()) else 1.0


@LOSSES.register("poly", aliases=("poly1", "polyloss"))
class PolyLoss(Loss):
    """Poly-1 (Leng et al., ICLR 2022): -log p_y + eps (1 - p_y), eps = 2.

    eps = 2 is the paper's ImageNet classification value (-1 for detection; eps >= -1); eps = 0 is CE."""

    defaults = {"eps": 2.0}

    def __init__(self, num_classes, **params):
        super().__init__(num_classes, **params)
        check_number(self.name, "eps", self.eps, 2.0, low=-1.0)

    def forward(self, logits, targets, indices=None):
        lp_y = pick(F.log_softmax(as_float(logits), dim=1), targets)
        return -lp_y + float(self.eps) * one_minus_p(lp_y)


@LOSSES.register("ngl", aliases=("next_generation_loss",))
class NextGenerationLoss(Loss):
    """NGL, next generation loss (Akhmedova & Koerber, 2024): mean_k exp(2.4092 - p_k (1 + t_k)) - cos cos sin p_k.

    Per sample: (1/K) sum_k [exp(alpha - p_k (1 + t_k)) - cos(cos(sin p_k))], t = one-hot(y), alpha = 2.4092
    (found by genetic programming).

    Bounded, no logarithm. The reference averages over the K classes (``class_reduction: mean``); its
    gradient is then 12x (K = 10) to 900x (K = 100) smaller than CE's, which the authors' Adam absorbs;
    with SGD use ``class_reduction: sum`` (K times larger) or re-tune the lr.
    """

    defaults = {"alpha": 2.4092, "class_reduction": "mean"}

    def __init__(self, num_classes, **params):
        super().__init__(num_classes, **params)
        check_number(self.name, "alpha", self.alpha, 2.4092)
        check(self.class_reduction in ("mean", "sum"), self.name, "class_reduction",
              f"must be 'mean' or 'sum', got {self.class_reduction!r}", "mean")

    def forward(self, logits, targets, indices=None):
        p = torch.softmax(as_float(logits), dim=1)
        t = F.one_hot(targets.long(), p.shape[1]).to(p.dtype)
        terms = torch.exp(float(self.alpha) - p * (1.0 + t)) - torch.cos(torch.cos(torch.sin(p)))
        return terms.mean(dim=1) if self.class_reduction == "mean" else terms.sum(dim=1)


# ---- SCE and the APL family ------------------------------------------------------------------------------

def _rce(lp_y, A):
    """Reverse CE with a one-hot label and log 0 := A: -A (1 - p_y)."""
    return -float(A) * one_minus_p(lp_y)


@LOSSES.register("sce", aliases=("symmetric_cross_entropy",))
class SymmetricCrossEntropy(Loss):
    """SCE (Wang et al., ICCV 2019): alpha (-log p_y) + beta * RCE, RCE = -A (1 - p_y).

    alpha = 0.1, beta = 1.0 (CIFAR-10; CIFAR-100: 6.0, 0.1). A = ln(1e-4) = -9.21, the value all reference
    code uses (one-hot clipped at 1e-4); the paper quotes A = -4, which only rescales beta.
    """

    defaults = {"alpha": 0.1, "beta": 1.0, "A": LOG_1E4}

    def __init__(self, num_classes, **params):
        super().__init__(num_classes, **params)
        check_number(self.name, "alpha", self.alpha, 0.1, low=0.0)
        check_number(self.name, "beta", self.beta, 1.0, low=0.0)
        check_number(self.name, "A", self.A, LOG_1E4, high=0.0, high_open=True)

    def forward(self, logits, targets, indices=None):
        lp_y = pick(F.log_softmax(as_float(logits), dim=1), targets)
        return float(self.alpha) * (-lp_y) + float(self.beta) * _rce(lp_y, self.A)


class _ActivePassive(Loss):
    """alpha * active + beta * passive (Ma et al., ICML 2020, "APL")."""

    active = "nce"   # nce | nfl
    passive = "rce"  # rce | mae
    defaults = {"alpha": 1.0, "beta": 1.0}

    def __init__(self, num_classes, **params):
        super().__init__(num_classes, **params)
        check_number(self.name, "alpha", self.alpha, 1.0, low=0.0)
        check_number(self.name, "beta", self.beta, 1.0, low=0.0)
        if "gamma" in self.defaults:
            check_number(self.name, "gamma", self.gamma, 0.5, low=0.0)
        if "A" in self.defaults:
            check_number(self.name, "A", self.A, LOG_1E4, high=0.0, high_open=True)
        if "mae_scale" in self.defaults:
            check_number(self.name, "mae_scale", self.mae_scale, 1.0, low=0.0)

    def forward(self, logits, targets, indices=None):
        lp = F.log_softmax(as_float(logits), dim=1)
        lp_y = pick(lp, targets)
        act = nce(lp, targets) if self.active == "nce" else nfl(lp, targets, float(self.gamma))
        pas = _rce(lp_y, self.A) if self.passive == "rce" else float(self.mae_scale) * one_minus_p(lp_y)
        return float(self.alpha) * act + float(self.beta) * pas


@LOSSES.register("nce_rce", aliases=("apl",))
class NCEandRCE(_ActivePassive):
    """APL NCE+RCE (Ma et al., ICML 2020): alpha log p_y / sum_k log p_k + beta (-A)(1 - p_y).

    alpha = beta = 1 (CIFAR-10; CIFAR-100: alpha 10, beta 0.1), A = ln(1e-4) as the code."""

    active, passive = "nce", "rce"
    defaults = {"alpha": 1.0, "beta": 1.0, "A": LOG_1E4}


@LOSSES.register("nce_mae")
class NCEandMAE(_ActivePassive):
    """APL NCE+MAE: alpha * NCE + beta * mae_scale (1 - p_y); alpha = beta = 1 (CIFAR-10; CIFAR-100: 10, 1).
    mae_scale 1 is the APL code's "reduced MAE" (the paper's MAE sum_k |p_k - e_yk| = 2(1 - p_y))."""

    active, passive = "nce", "mae"
    defaults = {"alpha": 1.0, "beta": 1.0, "mae_scale": 1.0}


@LOSSES.register("nfl_rce")
class NFLandRCE(_ActivePassive):
    """APL NFL+RCE: alpha NFL(gamma) + beta RCE; alpha = beta = 1, gamma = 0.5.

    CIFAR-100: alpha 10, beta 0.1. NFL's (1 - p)^gamma factors are detached, as in the reference."""

    active, passive = "nfl", "rce"
    defaults = {"alpha": 1.0, "beta": 1.0, "gamma": 0.5, "A": LOG_1E4}


@LOSSES.register("nfl_mae")
class NFLandMAE(_ActivePassive):
    """APL NFL+MAE: alpha NFL(gamma) + beta mae_scale (1 - p_y); alpha = beta = 1, gamma = 0.5.

    CIFAR-100: alpha 10, beta 1."""

    active, passive = "nfl", "mae"
    defaults = {"alpha": 1.0, "beta": 1.0, "gamma": 0.5, "mae_scale": 1.0}


@LOSSES.register("nce")
class NormalizedCE(Loss):
    """NCE alone (APL's active term): log p_y / sum_k log p_k, in [0, 1]."""

    def forward(self, logits, targets, indices=None):
        return nce(F.log_softmax(as_float(logits), dim=1), targets)


@LOSSES.register("nfl")
class NormalizedFocal(Loss):
    """NFL alone (APL's active term), gamma = 0.5, detached modulating factors."""

    defaults = {"gamma": 0.5}

    def __init__(self, num_classes, **params):
        super().__init__(num_classes, **params)
        check_number(self.name, "gamma", self.gamma, 0.5, low=0.0)

    def forward(self, logits, targets, indices=None):
        return nfl(F.log_softmax(as_float(logits), dim=1), targets, float(self.gamma))


@LOSSES.register("rce", aliases=("reverse_cross_entropy",))
class ReverseCE(Loss):
    """RCE alone (SCE/APL's passive term): -A (1 - p_y), A = ln(1e-4)."""

    defaults = {"A": LOG_1E4}

    def __init__(self, num_classes, **params):
        super().__init__(num_classes, **params)
        check_number(self.name, "A", self.A, LOG_1E4, high=0.0, high_open=True)

    def forward(self, logits, targets, indices=None):
        return _rce(pick(F.log_softmax(as_float(logits), dim=1), targets), self.A)


@LOSSES.register("mae", aliases=("mean_absolute_error",))
class MeanAbsoluteError(Loss):
    """MAE: scale (1 - p_y); scale 2 is sum_k |p_k - e_yk| (the paper's), 1 the APL code's reduced form."""

    defaults = {"scale": 2.0}

    def __init__(self, num_classes, **params):
        super().__init__(num_classes, **params)
        check_number(self.name, "scale", self.scale, 2.0, low=0.0, low_open=True)

    def forward(self, logits, targets, indices=None):
        return float(self.scale) * one_minus_p(pick(F.log_softmax(as_float(logits), dim=1), targets))


# ---- Asymmetric losses (Zhou et al., ICML 2021) ------------------------------------------------------------

def _agce(u, a, q):
    return ((a + 1.0) ** q - (a + u).pow(q)) / q


def _aul(u, a, q):
    return ((a - u).pow(q) - (a - 1.0) ** q) / q


def _ael(u, a):
    return torch.exp(-u / a)


class _Asymmetric(Loss):
    kind = "agce"  # agce | aul | ael
    with_nce = False

    def __init__(self, num_classes, **params):
        super().__init__(num_classes, **params)
        if self.with_nce:
            check_number(self.name, "alpha", self.alpha, self.defaults["alpha"], low=0.0)
            check_number(self.name, "beta", self.beta, self.defaults["beta"], low=0.0)
        if self.kind == "aul":
            check_number(self.name, "a", self.a, self.defaults["a"], low=1.0, low_open=True)
        else:
            check_number(self.name, "a", self.a, self.defaults["a"], low=0.0, low_open=True)
        if self.kind != "ael":
            check_number(self.name, "q", self.q, self.defaults["q"], low=0.0, low_open=True)

    def _passive(self, u):
        a = float(self.a)
        if self.kind == "agce":
            return _agce(u, a, float(self.q))
        if self.kind == "aul":
            return _aul(u, a, float(self.q))
        return _ael(u, a)

    def forward(self, logits, targets, indices=None):
        lp = F.log_softmax(as_float(logits), dim=1)
        u = torch.exp(pick(lp, targets))
        loss = self._passive(u)
        if self.with_nce:
            loss = float(self.alpha) * nce(lp, targets) + float(self.beta) * loss
        return loss


@LOSSES.register("agce")
class AGCE(_Asymmetric):
    """Asymmetric GCE: ((a + 1)^q - (a + p_y)^q) / q, a = 0.6, q = 0.6 (ALFs, CIFAR-10/100)."""

    kind = "agce"
    defaults = {"a": 0.6, "q": 0.6}


@LOSSES.register("aul")
class AUL(_Asymmetric):
    """Asymmetric unhinged loss: ((a - p_y)^q - (a - 1)^q) / q, a = 5.5 (> 1), q = 3 (ALFs, CIFAR-10/100)."""

    kind = "aul"
    defaults = {"a": 5.5, "q": 3.0}


@LOSSES.register("ael")
class AEL(_Asymmetric):
    """Asymmetric exponential loss: exp(-p_y / a), a = 2.5 (ALFs, CIFAR-10/100)."""

    kind = "ael"
    defaults = {"a": 2.5}


@LOSSES.register("nce_agce")
class NCEandAGCE(_Asymmetric):
    """alpha * NCE + beta * AGCE: alpha 1, beta 4, a 6, q 1.5 (ALFs CIFAR-10; CIFAR-100: 10, 0.1, 1.8, 3)."""

    kind, with_nce = "agce", True
    defaults = {"alpha": 1.0, "beta": 4.0, "a": 6.0, "q": 1.5}


@LOSSES.register("nce_aul")
class NCEandAUL(_Asymmetric):
    """alpha * NCE + beta * AUL: alpha 1, beta 4, a 6.3, q 1.5 (ALFs CIFAR-10; CIFAR-100: 10, 0.015, 6, 3).
    The NS paper's Table IV row "AUL"."""

    kind, with_nce = "aul", True
    defaults = {"alpha": 1.0, "beta": 4.0, "a": 6.3, "q": 1.5}


@LOSSES.register("nce_ael")
class NCEandAEL(_Asymmetric):
    """alpha * NCE + beta * AEL: alpha 1, beta 4, a 5 (ALFs CIFAR-10; CIFAR-100: 10, 0.1, 1.5)."""

    kind, with_nce = "ael", True
    defaults = {"alpha": 1.0, "beta": 4.0, "a": 5.0}


# ---- CE_eps + MAE (eps-softmax, NeurIPS 2024) ---------------------------------------------------------------

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

    defaults = {"alpha": 0.01, "beta": 5.0, "m": 1e5, "min_prob": 1e-8, "mae_scale": 2.0}

    def __init__(self, num_classes, **params):
        super().__init__(num_classes, **params)
        check_number(self.name, "alpha", self.alpha, 0.01, low=0.0)
        check_number(self.name, "beta", self.beta, 5.0, low=0.0)
        check_number(self.name, "m", self.m, 1e5, low=0.0)
        check_number(self.name, "min_prob", self.min_prob, 1e-8, low=0.0, high=1.0, low_open=True, high_open=True)
        check_number(self.name, "mae_scale", self.mae_scale, 2.0, low=0.0)

    def forward(self, logits, targets, indices=None):
        z = as_float(logits)
        lp = F.log_softmax(z, dim=1)
        lp_y = pick(lp, targets)
        m = float(self.m)
        is_max = z.argmax(dim=1) == targets
        log_m_plus_p = torch.log(m + torch.exp(lp_y)) if m > 0 else lp_y
        log_pt = torch.where(is_max, log_m_plus_p, lp_y) - math.log1p(m)
        ce_eps = -log_pt.clamp_min(math.log(float(self.min_prob)))
        return float(self.alpha) * ce_eps + float(self.beta) * float(self.mae_scale) * one_minus_p(lp_y)


# ---- ANL (Ye et al., NeurIPS 2023) --------------------------------------------------------------------------

class _ActiveNegative(Loss):
    """alpha * active + beta * normalised negative loss (per sample) + delta * ||theta||_1 (``penalty``).

    The L1 penalty is not per sample: it is returned by ``penalty(model)``, which the method adds once per
    batch, unweighted. It runs over the model's trainable parameters (the reference sums all parameters;
    frozen ones only add a constant). The ANL configs set weight decay to 0 (L1 replaces L2); the SFDA
    configs here keep the method's weight decay unless ``optim.weight_decay`` is overridden.
    """

    focal = False

    def __init__(self, num_classes, **params):
        super().__init__(num_classes, **params)
        for key in ("alpha", "beta", "delta"):
            check_number(self.name, key, getattr(self, key), self.defaults[key], low=0.0)
        check_number(self.name, "min_prob", self.min_prob, 1e-7, low=0.0, high=1.0, low_open=True, high_open=True)
        if self.focal:
            check_number(self.name, "gamma", self.gamma, 0.5, low=0.0)

    def forward(self, logits, targets, indices=None):
        lp = F.log_softmax(as_float(logits), dim=1)
        log_min = math.log(float(self.min_prob))
        lpc = lp.clamp_min(log_min)  # = log(clamp(p, min_prob)), gradient kept above the clamp
        if not self.focal:
            active = nce(lp, targets)
            t = lpc - log_min  # A + log p_k in [0, A], A = -log(min_prob)
            negative = 1.0 - pick(t, targets) / t.sum(dim=1)
        else:
            g = float(self.gamma)
            active = nfl(lp, targets, g)
            fl = -one_minus_p(lp.detach()).clamp_min(0.0).pow(g) * lpc   # FL_k, factor detached
            a_fl = -((1.0 - float(self.min_prob)) ** g) * log_min
            negative = 1.0 - (a_fl - pick(fl, targets)) / (lp.shape[1] * a_fl - fl.sum(dim=1))
        return float(self.alpha) * active + float(self.beta) * negative

    def penalty(self, model: nn.Module):
        if float(self.delta) == 0:
            return 0.0
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            return 0.0
        return float(self.delta) * torch.stack([p.float().abs().sum() for p in params]).sum()


@LOSSES.register("anl_ce", aliases=("anl",))
class ANLCE(_ActiveNegative):
    """ANL-CE (Ye et al., NeurIPS 2023): alpha NCE + beta NNCE (per sample) + delta ||theta||_1 (penalty).

    NNCE = 1 - t_y / sum_k t_k with t_k = A + log max(p_k, min_prob), A = -log(min_prob). alpha 5, beta 5,
    delta 5e-5, min_prob 1e-7 (CIFAR-10; CIFAR-100: 10, 1, 5e-7)."""

    defaults = {"alpha": 5.0, "beta": 5.0, "delta": 5e-5, "min_prob": 1e-7}


@LOSSES.register("anl_fl")
class ANLFL(_ActiveNegative):
    """ANL-FL (Ye et al., NeurIPS 2023): alpha NFL + beta NNFL (per sample) + delta ||theta||_1 (penalty).

    NNFL = 1 - (A_FL - FL_y) / (K A_FL - sum_k FL_k), A_FL = -(1 - min_prob)^gamma log(min_prob). alpha 5,
    beta 5, delta 5e-5, gamma 0.5 (CIFAR-10; CIFAR-100: 10, 1, 5e-7)."""

    focal = True
    defaults = {"alpha": 5.0, "beta": 5.0, "delta": 5e-5, "gamma": 0.5, "min_prob": 1e-7}
