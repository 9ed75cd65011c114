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
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..params import ParamError, param
from ..registry import LOSSES
from ..state import PerSampleState
from .base import Loss, LossParams
from .functional import as_float, log1m_prob, pick


@LOSSES.register("nlnl", aliases=("negative_learning", "nl"))
class NLNL(Loss):
    """NLNL (Kim et al., ICCV 2019): -w_y sum_j log(1 - p_ybar_j), optional SelNL / SelPL stages."""

    @dataclass
    class Params(LossParams):
        ln_neg: int = param(1, low=1, help="complementary labels per sample (reference: 1 CIFAR-10, 110 CIFAR-100)")
        min_prob: float = param(1e-5, low=0.0, high=1.0, low_open=True, high_open=True, help="clamp of 1 - p_ybar")
        class_weights: bool = param(True, help="w_c = max n / n_c from the labels (false: all 1)")
        selnl_after: Optional[int] = param(None, low=0, help="visits of a sample before SelNL (null: NL throughout)")
        selpl_after: Optional[int] = param(None, low=0, help="visits of a sample before SelPL (null: no SelPL)")
        num_hist: int = param(10, low=1, help="length of the per-sample prediction history")
        sel_threshold: Optional[float] = param(
            None, low=0.0, high=1.0, help="SelNL keeps samples with history-mean p_y >= this (null: 1/K)"
        )
        cut: float = param(0.5, low=0.0, high=1.0, help="SelPL keeps samples with history-mean p_y >= cut")

        def check(self) -> None:
            if self.selnl_after is not None and self.selpl_after is not None and self.selpl_after < self.selnl_after:
                raise ParamError("selpl_after", f"must be >= selnl_after ({self.selnl_after}), got {self.selpl_after}")

    hparams: Params
    weights: torch.Tensor

    def __init__(self, num_classes: int, hparams: Optional[Params] = None, **overrides: Any) -> None:
        super().__init__(num_classes, hparams, **overrides)
        if num_classes < 2:
            raise ConfigError(f"loss '{self.name}' needs at least 2 classes (complementary labels), got {num_classes}")
        self.register_buffer("weights", torch.ones(num_classes))  # class weights w_c, set by update_labels
        self.uses_history = self.hparams.selnl_after is not None or self.hparams.selpl_after is not None
        # per sample: softmax outputs of the last num_hist visits (a ring buffer) and the visit count
        self.samples = PerSampleState(
            history=((self.hparams.num_hist, num_classes), torch.float32, 0.0), visits=((), torch.long, 0)
        )

    # -- hooks ---------------------------------------------------------------------------------------------
    def update_labels(self, labels: torch.Tensor) -> None:
        """Class weights w_c = max_c' n_c' / n_c from the current labels (classes without samples: 1)."""
        lab = labels.long()
        lab = lab[(lab >= 0) & (lab < self.num_classes)]
        counts = torch.bincount(lab, minlength=self.num_classes).float()
        w = torch.ones(self.num_classes, device=counts.device)
        if self.hparams.class_weights and bool((counts > 0).any()):
            nz = counts > 0
            w[nz] = counts.max() / counts[nz]
        self.weights.copy_(w)
        if self.uses_history:
            self.samples.grow(int(labels.numel()), labels.device)

    # -- the loss ------------------------------------------------------------------------------------------
    def complementary(self, targets: torch.Tensor) -> torch.Tensor:
        """[N, ln_neg] labels drawn uniformly from the K-1 classes other than each target."""
        r = torch.randint(1, self.num_classes, (targets.shape[0], self.hparams.ln_neg), device=targets.device)
        return (targets.long().view(-1, 1) + r) % self.num_classes

    def nl_term(self, z: torch.Tensor, targets: torch.Tensor, ybar: Optional[torch.Tensor] = None) -> torch.Tensor:
        """sum_j -log max(1 - p_ybar_j, min_prob), unweighted."""
        ybar = self.complementary(targets) if ybar is None else ybar
        return -log1m_prob(z, ybar).clamp_min(math.log(self.hparams.min_prob)).sum(dim=1)

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        hp = self.hparams
        z = as_float(logits)
        w = self.weights.to(z.device)[targets.long()]
        nl = w * self.nl_term(z, targets)
        if not self.uses_history or indices is None:
            return nl
        idx = indices.long()
        if len(self.samples) == 0 or idx.device.type == "cpu" or self.samples.get("visits").device != idx.device:
            self.samples.grow(int(idx.max().item()) + 1, z.device)  # sized by update_labels otherwise
        history, all_visits = self.samples.get("history"), self.samples.get("visits")
        with torch.no_grad():
            visits = all_visits[idx]
            seen = (history[idx] > 0).any(dim=2)  # [N, H] filled slots
            filled = seen.sum(dim=1).clamp_min(1)
            mean_p = pick(history[idx].sum(dim=1), targets) / filled  # history-mean p_y
            has_hist = seen.any(dim=1)
            never = torch.zeros_like(visits, dtype=torch.bool)
            in_selnl = (visits >= hp.selnl_after) if hp.selnl_after is not None else never
            in_selpl = (visits >= hp.selpl_after) if hp.selpl_after is not None else never
            threshold = 1.0 / self.num_classes if hp.sel_threshold is None else hp.sel_threshold
            keep_nl = ~in_selnl | (has_hist & (mean_p >= threshold))
            keep_pl = has_hist & (mean_p >= hp.cut)
            # record this pass in the ring buffer (slot = visit count mod num_hist)
            history[idx, visits % hp.num_hist] = torch.softmax(z.detach(), dim=1).clamp_min(1e-30)
            all_visits[idx] += 1
        loss = torch.where(keep_nl, nl, torch.zeros_like(nl))
        if hp.selpl_after is not None:
            pl = w * F.cross_entropy(z, targets.long(), reduction="none")
            loss = torch.where(in_selpl, torch.where(keep_pl, pl, torch.zeros_like(pl)), loss)
        return loss

    def stage_counts(self) -> Dict[str, int]:
        """Samples per stage by their visit counts (diagnostics)."""
        visits = self.samples.get("visits")
        big = torch.iinfo(torch.long).max
        a = big if self.hparams.selnl_after is None else self.hparams.selnl_after
        b = big if self.hparams.selpl_after is None else self.hparams.selpl_after
        return {
            "nl": int((visits < min(a, b)).sum()),
            "selnl": int(((visits >= a) & (visits < b)).sum()),
            "selpl": int((visits >= b).sum()),
        }
