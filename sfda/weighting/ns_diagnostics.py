"""What NS reports about an epoch: the fraction of clamped weights, the spread of the scores, the mean score of
each class (and their spread), histograms of the scores and weights, and, for the first and last epoch, every
sample's score and weight (the run keeps them in ``ns_scores.pt``, which ``sfda plot`` reads).

Per step the scores and counts stay on the device (no host sync); they are gathered once per epoch.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Union

import torch

from .base import WeightingReport, gathered

SCORES_FILE = "ns_scores.pt"


class NSDiagnostics:
    """One epoch's NS scores; ``keep_indices``: also the samples' dataset indices (for the kept scores)."""

    def __init__(self, keep_indices: bool):
        self.keep_indices = keep_indices
        self.reset()

    def reset(self) -> None:
        self.scores: List[torch.Tensor] = []
        self.indices: List[torch.Tensor] = []
        self.clamped: Union[int, torch.Tensor] = 0  # a device tensor once counting starts
        self.seen = 0

    def add(self, scores: torch.Tensor, clamped: torch.Tensor, indices: Optional[torch.Tensor]) -> None:
        """One step: the samples' scores, which weights were clamped at the floor, their dataset indices."""
        self.clamped = self.clamped + clamped.sum()
        self.seen += scores.numel()
        self.scores.append(scores)
        if self.keep_indices:
            self.indices.append(indices if indices is not None else torch.full_like(scores, -1, dtype=torch.long))

    def sync(self, gather: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Several processes: every rank's scores of the epoch, in rank order (as the weighter's weights)."""
        scores = gather(gathered(self.scores))
        self.scores = [scores] if scores.numel() else []
        if self.keep_indices:
            indices = gather(gathered(self.indices).long())
            self.indices = [indices] if indices.numel() else []
        counts = gather(torch.tensor([[float(self.clamped), float(self.seen)]], dtype=torch.float64))
        self.clamped, self.seen = int(counts[:, 0].sum().item()), int(counts[:, 1].sum().item())

    def report(
        self,
        report: WeightingReport,
        epoch: int,
        weights: torch.Tensor,
        targets: torch.Tensor,
        num_classes: int,
        samples: Optional[Dict[str, float]],
    ) -> None:
        """Add the epoch's NS statistics to ``report`` and reset. ``samples``: keep every sample's score and
        weight with these settings (sigma, rho, m), or None."""
        scores = gathered(self.scores)
        class_means = {k: scores[targets == k].mean().item() for k in range(num_classes) if (targets == k).any()}
        report.stats["clamped_fraction"] = int(self.clamped) / max(self.seen, 1)
        report.stats["score_std"] = scores.std(unbiased=False).item() if scores.numel() else 0.0
        if class_means:
            report.stats["class_score_spread"] = max(class_means.values()) - min(class_means.values())
        if scores.numel():
            report.histograms.update({"ns/score": scores, "ns/weight": weights})
            report.scalars.update({f"ns_class_score/class_{k:03d}": mean for k, mean in class_means.items()})
            if samples is not None:
                report.samples_file = SCORES_FILE
                report.samples = {
                    "epoch": epoch + 1,
                    "indices": gathered(self.indices).long(),
                    "targets": targets,
                    "scores": scores,
                    "weights": weights,
                    **samples,
                }
        self.reset()
