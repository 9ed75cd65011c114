"""The sample-weighting interface.

A weighter turns a batch into one weight per sample, without gradient. The trainer hands it the method's
per-sample pseudo-label (or supervised) loss and adds the weighted reduction (:meth:`Weighter.weighted_loss`)
to the loss; nothing else in the trainer or the methods knows how a weighter works. Weighters see a
:class:`WeightInput`:

- ``model``: the network (NS runs it on composite images);
- ``images``: the batch as fed to training (after augmentation);
- ``targets``: the labels the loss uses (ground truth, or pseudo-labels in adaptation);
- ``logits``: the training forward pass's logits, detached (confidence/entropy weighters reuse them);
- ``indices``: dataset indices; ``epoch``, ``progress`` (0..1 through training).

Reduction (``weighting.reduction``): ``mean`` is mean_i(w_i l_i) (the paper's), ``normalized`` is
sum_i(w_i l_i) / sum_i(w_i). The ``none`` weighter takes the plain mean of the losses and records nothing.

At the end of an epoch a weighter returns a :class:`WeightingReport` (statistics for the history, histograms,
per-sample arrays to keep); the run, not the weighter, logs and saves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Literal, Optional

import torch

from ..datatypes import WeightInput
from ..params import NoParams, hparams_for, param
from ..params import Params as ComponentParams
from ..registry import WEIGHTERS

Reduction = Literal["mean", "normalized"]


@dataclass
class WeightingReport:
    """A weighter's summary of one epoch (empty if it weighted no step)."""

    stats: Dict[str, float] = field(default_factory=dict)  # kept in the history as w_<name>
    histograms: Dict[str, torch.Tensor] = field(default_factory=dict)  # TensorBoard tag -> values
    scalars: Dict[str, float] = field(default_factory=dict)  # TensorBoard tag -> value
    samples: Optional[Dict[str, Any]] = None  # per-sample arrays to keep (when asked: first and last epoch)
    samples_file: str = ""  # the run file that keeps them (e.g. ns_scores.pt)


def gathered(parts: List[torch.Tensor]) -> torch.Tensor:
    """An epoch's per-step tensors, concatenated, on the CPU (empty if there are none)."""
    return torch.cat(parts).cpu() if parts else torch.zeros(0)


class Weighter:
    """Base of the weighters: ``weights(batch) -> [N]``; the weights and targets of an epoch are kept on the
    device (no host sync per step) and summarised by :meth:`epoch_end`."""

    @dataclass
    class Params(ComponentParams):
        reduction: Reduction = param("mean", help="mean: mean(w l) (the paper's); normalized: sum(w l) / sum(w)")

    name: str = ""
    label = ""  # short name for tables (e.g. NS-WS)

    def __init__(self, num_classes: int, hparams: Optional[ComponentParams] = None, **overrides: Any):
        self.num_classes = num_classes
        self.hparams: Any = hparams_for(type(self), hparams, overrides, prefix="weighting.")
        self._epoch_weights: List[torch.Tensor] = []
        self._epoch_targets: List[torch.Tensor] = []

    @classmethod
    def display(cls, spec: dict) -> str:
        """Short name for table rows (NS uses its rho: NS-WS / NS-LF)."""
        return cls.label or cls.name

    # -- the interface -------------------------------------------------------------------------------
    def weights(self, batch: WeightInput) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, batch: WeightInput) -> torch.Tensor:
        weights = self.weights(batch).detach().float()
        self._epoch_weights.append(weights)
        self._epoch_targets.append(batch.targets.detach())
        return weights

    def reduce(self, weights: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        weighted = weights.to(losses.dtype) * losses
        if self.hparams.reduction == "normalized":
            return weighted.sum() / weights.sum().clamp_min(1e-12)
        return weighted.mean()

    def weighted_loss(self, losses: torch.Tensor, batch: WeightInput) -> torch.Tensor:
        """The batch's loss: ``losses`` [N] (per sample) weighted by this weighter and reduced."""
        return self.reduce(self(batch), losses)

    # -- diagnostics ------------------------------------------------------------------------------------
    def sync_epoch(self, gather: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Several processes: replace this rank's epoch (weights, targets) by every rank's, before
        :meth:`epoch_end`. ``gather`` concatenates a tensor's rows over the ranks. Weights are computed per rank
        (each rank weights its own batch); only the epoch's record is global."""
        weights, targets = gather(gathered(self._epoch_weights)), gather(gathered(self._epoch_targets).long())
        self._epoch_weights, self._epoch_targets = ([weights], [targets]) if weights.numel() else ([], [])

    def epoch_end(self, epoch: int, keep_samples: bool = False) -> WeightingReport:
        """This epoch's summary (statistics of the weights, plus the weighter's own), then a fresh epoch.
        ``keep_samples``: also return the per-sample arrays, if the weighter keeps any."""
        if not self._epoch_weights:
            return WeightingReport()
        weights = gathered(self._epoch_weights)
        report = WeightingReport(
            stats={
                "weight_mean": weights.mean().item(),
                "weight_std": weights.std(unbiased=False).item(),
                "weight_min": weights.min().item(),
                "weight_max": weights.max().item(),
            }
        )
        self.add_to_report(report, epoch, weights, gathered(self._epoch_targets).long(), keep_samples)
        self._epoch_weights, self._epoch_targets = [], []
        return report

    def add_to_report(
        self, report: WeightingReport, epoch: int, weights: torch.Tensor, targets: torch.Tensor, keep_samples: bool
    ) -> None:
        """A weighter's own statistics of the epoch (``weights`` and ``targets`` of every weighted sample)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@WEIGHTERS.register("none")
class NoWeighting(Weighter):
    """No weighting: in training the per-sample loss is averaged as is (no weights computed, nothing recorded)."""

    @dataclass
    class Params(NoParams):
        """No parameters."""

    def weights(self, batch: WeightInput) -> torch.Tensor:
        return torch.ones(batch.targets.shape[0], device=batch.targets.device)

    def weighted_loss(self, losses: torch.Tensor, batch: WeightInput) -> torch.Tensor:
        return losses.mean()


@WEIGHTERS.register("uniform")
class Uniform(Weighter):
    """w_i = 1 for every sample (a control: must give exactly the unweighted result)."""

    label = "uniform"

    def weights(self, batch: WeightInput) -> torch.Tensor:
        return torch.ones(batch.targets.shape[0], device=batch.targets.device)


def build_weighter(cfg: Any, num_classes: int) -> Weighter:
    """The configured weighter (``weighting.name``; ``none`` averages the loss unweighted)."""
    return WEIGHTERS.build(cfg.weighting.name, cfg.weighting, num_classes, key="weighting.name", prefix="weighting.")
