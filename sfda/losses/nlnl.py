"""NLNL: negative learning for noisy labels (Kim et al., ICCV 2019), as a per-sample loss.

Negative learning (NL): for each sample draw ``ln_neg`` complementary labels ybar uniformly among the K-1
classes other than its label y (a new draw on every call; duplicates possible) and train the network to
say "not ybar":

    l_NL = -w_y * sum_j log max(1 - p_ybar_j, min_prob)

with class weights w_c = max_c' n_c' / n_c from the label counts (``update_labels``: the ground truth in
source training, the pseudo-labels after every refresh in adaptation). log(1 - p) is computed as
logsumexp over the other classes minus logsumexp over all, and clamped at log(min_prob) as the reference
clamps 1 - p at 1e-5 (each term is at most 11.51).

The reference's three stages are kept, with stage lengths counted in visits of each sample (one visit =
one epoch with plain shuffling) instead of the reference's fixed 720-epoch stages:

- NL (visits < ``selnl_after``, or always when it is null);
- SelNL (``selnl_after`` <= visits < ``selpl_after``): NL only on samples whose mean predicted p_y over
  their last ``num_hist`` training forward passes (10 in the reference) is at least ``sel_threshold``
  (null: 1/K, the reference), others contribute 0;
- SelPL (visits >= ``selpl_after``): positive learning, class-weighted CE w_y (-log p_y), only on samples
  whose history-mean p_y is at least ``cut`` (0.5, the reference's gamma); NL is off.

The history holds each sample's softmax vector (not just p_y), so after a pseudo-label refresh the
history mean is read at the new label. The reference's final pseudo-labelling stage is not part of the loss
(in SFDA the method's own pseudo-labels play that role). Dropped samples contribute 0 to the mean over the
batch; the reference divides by the number of selected samples instead (a batch-level rescaling).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from ..registry import LOSSES
from .base import Loss
from .functional import as_float, check, check_number, log1m_prob, pick


@LOSSES.register("nlnl", aliases=("negative_learning", "nl"))
class NLNL(Loss):
    """NLNL (Kim et al., ICCV 2019): -w_y sum_j log(1 - p_ybar_j), optional SelNL / SelPL stages."""

    defaults = {
        "ln_neg": 1,             # complementary labels per sample (reference: 1 for CIFAR-10, 110 for CIFAR-100)
        "min_prob": 1e-5,        # clamp of 1 - p_ybar
        "class_weights": True,   # w_c = max n / n_c from update_labels
        "selnl_after": None,     # visits of a sample before SelNL (null: NL throughout)
        "selpl_after": None,     # visits of a sample before SelPL (null: no SelPL)
        "num_hist": 10,          # length of the per-sample prediction history
        "sel_threshold": None,   # SelNL keeps samples with history-mean p_y >= this (null: 1/K)
        "cut": 0.5,              # SelPL keeps samples with history-mean p_y >= cut
    }

    def __init__(self, num_classes, **params):
        super().__init__(num_classes, **params)
        check(num_classes >= 2, self.name, "num_classes", f"must be at least 2 for complementary labels, got {num_classes}", 2)
        check_number(self.name, "ln_neg", self.ln_neg, 1, low=1, integer=True)
        check_number(self.name, "min_prob", self.min_prob, 1e-5, low=0.0, high=1.0, low_open=True, high_open=True)
        check(isinstance(self.class_weights, bool), self.name, "class_weights", f"must be true/false, got {self.class_weights!r}", "true")
        for key in ("selnl_after", "selpl_after"):
            v = getattr(self, key)
            if v is not None:
                check_number(self.name, key, v, 5, low=0, integer=True)
        if self.selnl_after is not None and self.selpl_after is not None:
            check(self.selpl_after >= self.selnl_after, self.name, "selpl_after",
                  f"must be >= selnl_after ({self.selnl_after}), got {self.selpl_after}", self.selnl_after)
        check_number(self.name, "num_hist", self.num_hist, 10, low=1, integer=True)
        if self.sel_threshold is not None:
            check_number(self.name, "sel_threshold", self.sel_threshold, 0.1, low=0.0, high=1.0)
        check_number(self.name, "cut", self.cut, 0.5, low=0.0, high=1.0)
        self.register_buffer("weights", torch.ones(num_classes))
        self.uses_history = self.selnl_after is not None or self.selpl_after is not None
        # per-index state, grown to the training-set size on first use (extra state: size unknown at build)
        self.history = torch.zeros(0, int(self.num_hist), num_classes)
        self.visits = torch.zeros(0, dtype=torch.long)

    def get_extra_state(self):
        return {"history": self.history, "visits": self.visits}

    def set_extra_state(self, state):
        self.history, self.visits = state["history"], state["visits"]

    # -- hooks ---------------------------------------------------------------------------------------------
    def update_labels(self, labels: torch.Tensor) -> None:
        """Class weights w_c = max_c' n_c' / n_c from the current labels (classes without samples: 1)."""
        lab = labels.long()
        lab = lab[(lab >= 0) & (lab < self.num_classes)]
        counts = torch.bincount(lab, minlength=self.num_classes).float()
        w = torch.ones(self.num_classes, device=counts.device)
        if self.class_weights and bool((counts > 0).any()):
            nz = counts > 0
            w[nz] = counts.max() / counts[nz]
        self.weights = w.to(self.weights.device)
        if self.uses_history:
            self._grow(int(labels.numel()), labels.device)

    def _grow(self, n: int, device) -> None:
        device = torch.device(device)
        if self.history.device != device:
            self.history, self.visits = self.history.to(device), self.visits.to(device)
        old = self.visits.numel()
        if n <= old:
            return
        self.history = torch.cat([self.history, torch.zeros(n - old, *self.history.shape[1:], device=device)])
        self.visits = torch.cat([self.visits, torch.zeros(n - old, dtype=torch.long, device=device)])

    # -- the loss ------------------------------------------------------------------------------------------
    def complementary(self, targets: torch.Tensor) -> torch.Tensor:
        """[N, ln_neg] labels drawn uniformly from the K-1 classes other than each target."""
        r = torch.randint(1, self.num_classes, (targets.shape[0], int(self.ln_neg)), device=targets.device)
        return (targets.long().view(-1, 1) + r) % self.num_classes

    def nl_term(self, z: torch.Tensor, targets: torch.Tensor, ybar: Optional[torch.Tensor] = None) -> torch.Tensor:
        """sum_j -log max(1 - p_ybar_j, min_prob), unweighted."""
        ybar = self.complementary(targets) if ybar is None else ybar
        return -log1m_prob(z, ybar).clamp_min(math.log(float(self.min_prob))).sum(dim=1)

    def forward(self, logits, targets, indices=None):
        z = as_float(logits)
        w = self.weights.to(z.device)[targets.long()]
        nl = w * self.nl_term(z, targets)
        if not self.uses_history or indices is None:
            return nl
        idx = indices.long()
        if self.visits.numel() == 0 or idx.device.type == "cpu" or self.visits.device != idx.device:
            self._grow(int(idx.max().item()) + 1, z.device)  # sized by update_labels otherwise
        with torch.no_grad():
            v = self.visits[idx]
            seen = (self.history[idx] > 0).any(dim=2)                      # [N, H] filled slots
            filled = seen.sum(dim=1).clamp_min(1)
            mean_p = pick(self.history[idx].sum(dim=1), targets) / filled  # history-mean p_y
            has_hist = seen.any(dim=1)
            in_selnl = (v >= self.selnl_after) if self.selnl_after is not None else torch.zeros_like(v, dtype=torch.bool)
            in_selpl = (v >= self.selpl_after) if self.selpl_after is not None else torch.zeros_like(v, dtype=torch.bool)
            thr = 1.0 / self.num_classes if self.sel_threshold is None else float(self.sel_threshold)
            keep_nl = ~in_selnl | (has_hist & (mean_p >= thr))
            keep_pl = has_hist & (mean_p >= float(self.cut))
            # record this pass in the ring buffer (slot = visit count mod num_hist)
            slot = v % int(self.num_hist)
            self.history[idx, slot] = torch.softmax(z.detach(), dim=1).clamp_min(1e-30)
            self.visits[idx] += 1
        loss = torch.where(keep_nl, nl, torch.zeros_like(nl))
        if self.selpl_after is not None:
            pl = w * F.cross_entropy(z, targets.long(), reduction="none")
            loss = torch.where(in_selpl, torch.where(keep_pl, pl, torch.zeros_like(pl)), loss)
        return loss

    def stage_counts(self) -> dict:
        """Samples per stage by their visit counts (diagnostics)."""
        v = self.visits
        big = torch.iinfo(torch.long).max
        a = big if self.selnl_after is None else self.selnl_after
        b = big if self.selpl_after is None else self.selpl_after
        return {"nl": int((v < min(a, b)).sum()), "selnl": int(((v >= a) & (v < b)).sum()), "selpl": int((v >= b).sum())}
