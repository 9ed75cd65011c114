"""Generalized cross-entropy L_q (Zhang & Sabuncu, NeurIPS 2018) and its truncated form.

L_q(p_y) = (1 - p_y^q) / q interpolates between CE (q -> 0) and MAE's 1 - p_y (q = 1). Notation: z logits,
log p = log_softmax(z), y the (pseudo-)label, p_y its probability, K the classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F

from ..params import param
from ..registry import LOSSES
from ..state import PerSampleState
from .base import Loss, LossParams
from .functional import as_float, gce_term, pick


@LOSSES.register("gce", aliases=("generalized_cross_entropy", "lq"))
class GeneralizedCrossEntropy(Loss):
    """GCE / L_q (Zhang & Sabuncu, NeurIPS 2018): (1 - p_y^q) / q with q in (0, 1]; q = 0.7 (reference).

    q -> 0 gives CE, q = 1 gives 1 - p_y. Computed as -expm1(q log p_y)/q: no clamp of p (the reference
    clamps p at 1e-7, which zeroes the gradient below it) and exact for small q.
    """

    @dataclass
    class Params(LossParams):
        q: float = param(0.7, low=0.0, high=1.0, low_open=True, help="exponent; q -> 0 is CE, q = 1 is 1 - p_y")

    hparams: Params

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        return gce_term(pick(F.log_softmax(as_float(logits), dim=1), targets), self.hparams.q)


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

    @dataclass
    class Params(LossParams):
        q: float = param(0.7, low=0.0, high=1.0, low_open=True, help="exponent of L_q")
        k: float = param(0.5, low=0.0, high=1.0, high_open=True, help="samples with p_y <= k are pruned")
        start_prune: int = param(1, low=1, help="visits of a sample before its mask is first computed")
        prune_every: int = param(1, low=1, help="visits between recomputations of a sample's mask")

    hparams: Params

    def __init__(self, num_classes: int, hparams: Optional[Params] = None, **overrides: Any) -> None:
        super().__init__(num_classes, hparams, **overrides)
        # per sample: keep mask, softmax output of the last visit, visits, mask due for recomputation
        self.samples = PerSampleState(
            mask=((), torch.float32, 1.0),
            record=((num_classes,), torch.float32, 0.0),
            visits=((), torch.long, 0),
            due=((), torch.bool, False),
        )

    def update_labels(self, labels: torch.Tensor) -> None:
        """A (pseudo-)label refresh: size the state to the training set, recompute every mask on next use."""
        self.samples.grow(int(labels.numel()), labels.device)
        self.samples.get("due").fill_(True)

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        q, k = self.hparams.q, self.hparams.k
        start, every = self.hparams.start_prune, self.hparams.prune_every
        lp_y = pick(F.log_softmax(as_float(logits), dim=1), targets)
        lq = gce_term(lp_y, q)
        if indices is None:
            return lq
        idx = indices.long()
        state = self.samples
        if len(state) == 0 or idx.device.type == "cpu" or state.get("mask").device != idx.device:
            state.grow(int(idx.max().item()) + 1, lp_y.device)  # sized by update_labels otherwise
        mask, record, visits, due = (state.get(name) for name in ("mask", "record", "visits", "due"))
        with torch.no_grad():
            seen = visits[idx]
            scheduled = (seen >= start) & ((seen - start) % every == 0)
            redo = (scheduled | due[idx]) & (seen >= start)
            fresh = (pick(record[idx], targets) > k).float()
            mask[idx] = torch.where(redo, fresh, mask[idx])
            due[idx] = False
            record[idx] = torch.softmax(as_float(logits).detach(), dim=1)
            visits[idx] += 1
            keep = mask[idx]
        lq_k = (1.0 - k**q) / q
        return keep * lq + (1.0 - keep) * lq_k

    def kept_fraction(self) -> float:
        """The fraction of the samples seen so far whose mask keeps them (diagnostics)."""
        seen = self.samples.get("visits") > 0
        return float(self.samples.get("mask")[seen].mean().item()) if bool(seen.any()) else 1.0
