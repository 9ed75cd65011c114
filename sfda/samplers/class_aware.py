"""Class-balanced (CBS), square-root (SRS) and progressively-balanced (PBS) sampling (Kang et al., ICLR 2020).

Class j of the current labels (ground truth in source training; in adaptation the pseudo-labels, which the
trainer passes every epoch after the refresh) is drawn with probability

    CBS: p_j = 1 / C                SRS: p_j = sqrt(n_j) / sum_i sqrt(n_i)
    PBS: p_j(e) = (1 - lambda_e) n_j / N + lambda_e / C,   lambda_e = e / (T - 1)  (e = 0..T-1)

and a sample within its class uniformly. C counts the classes that have samples this epoch: empty classes
are dropped (renormalised over the others). PBS follows the reference code's schedule: pure
instance-balanced in the first epoch, pure class-balanced in the last (lambda = 0 when T = 1).

Realisation: ``WeightedRandomSampler`` with per-sample weight p_{y_i} / n_{y_i}, N draws with replacement
per epoch (N = the training-set size, so the epoch length and the lr schedule are unchanged). The reference
cycles class lists for CBS (epoch length C * max n_j) and uses sum-trees for SRS/PBS; the marginal class
distribution is the same. Samples with a negative label (unlabelled) are never drawn.
"""

from __future__ import annotations

from typing import Optional, Sequence, cast

import torch
from torch.utils.data import WeightedRandomSampler

from ..errors import SfdaError
from ..registry import SAMPLERS
from .base import ClassSampler


class _ClassProbabilitySampler(ClassSampler):
    """Draw class j with probability ``class_probs(counts, epoch, epochs)[j]``, then a sample uniformly."""

    def class_probs(self, counts: torch.Tensor, epoch: int, epochs: int) -> torch.Tensor:
        raise NotImplementedError

    def sample_weights(self, labels: torch.Tensor, epoch: int, epochs: int) -> torch.Tensor:
        """Per-sample draw probabilities (sum 1) for this epoch."""
        lab = labels.long().view(-1)
        valid = (lab >= 0) & (lab < self.num_classes)
        if not bool(valid.any()):
            raise SfdaError(f"sampler '{self.name}': no sample has a label in 0..{self.num_classes - 1}")
        counts = torch.bincount(lab[valid], minlength=self.num_classes).double()
        probs = torch.zeros_like(counts)
        nz = counts > 0
        probs[nz] = self.class_probs(counts[nz], epoch, epochs)
        probs = probs / probs.sum()
        weights = torch.zeros(lab.numel(), dtype=torch.double)
        weights[valid] = probs[lab[valid]] / counts[lab[valid]]
        return weights

    def build(
        self, labels: Optional[torch.Tensor], epoch: int, epochs: int, generator: torch.Generator
    ) -> Optional[WeightedRandomSampler]:
        if labels is None:  # the method has no labels for the training set: plain shuffling
            return None
        labels = labels.cpu()
        weights = self.sample_weights(labels, epoch, epochs)
        return WeightedRandomSampler(
            cast(Sequence[float], weights), num_samples=int(labels.numel()), replacement=True, generator=generator
        )


@SAMPLERS.register("cbs", aliases=("class_balanced",))
class ClassBalancedSampler(_ClassProbabilitySampler):
    """Class-balanced sampling: every non-empty class equally often (p_j = 1/C)."""

    label = "CBS"

    def class_probs(self, counts, epoch, epochs):
        return torch.full_like(counts, 1.0 / counts.numel())


@SAMPLERS.register("srs", aliases=("square_root",))
class SquareRootSampler(_ClassProbabilitySampler):
    """Square-root sampling: p_j proportional to sqrt(n_j)."""

    label = "SRS"

    def class_probs(self, counts, epoch, epochs):
        s = counts.sqrt()
        return s / s.sum()


@SAMPLERS.register("pbs", aliases=("progressively_balanced", "progressive"))
class ProgressivelyBalancedSampler(_ClassProbabilitySampler):
    """Progressively-balanced sampling: from instance-balanced (first epoch) to class-balanced (last)."""

    label = "PBS"

    @staticmethod
    def lam(epoch: int, epochs: int) -> float:
        return 0.0 if epochs <= 1 else min(max(epoch / (epochs - 1), 0.0), 1.0)

    def class_probs(self, counts, epoch, epochs):
        lam = self.lam(epoch, epochs)
        return (1.0 - lam) * counts / counts.sum() + lam / counts.numel()
