"""The sample-weighting interface.

A weighter turns a batch into one weight per sample, without gradient. The trainer multiplies the method's
per-sample pseudo-label (or supervised) loss by these weights and reduces it; nothing else in the trainer or
the methods knows how a weighter works. Weighters see a :class:`WeightInput`:

- ``model``: the network (NS runs it on composite images);
- ``images``: the batch as fed to training (after augmentation);
- ``targets``: the labels the loss uses (ground truth, or pseudo-labels in adaptation);
- ``logits``: the training forward pass's logits, detached (confidence/entropy weighters reuse them);
- ``indices``: dataset indices; ``epoch``, ``progress`` (0..1 through training).

Reduction (``weighting.reduction``): ``mean`` is mean_i(w_i l_i) (the paper's), ``normalized`` is
sum_i(w_i l_i) / sum_i(w_i).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn as nn

from ..datatypes import WeightInput
from ..registry import WEIGHTERS


class Weighter:
    defaults: dict = {"reduction": "mean"}
    label = ""  # short name for tables (e.g. NS-WS)

    def __init__(self, num_classes: int, **params):
        self.num_classes = num_classes
        params = {**self.defaults, **params}
        for k, v in params.items():
            setattr(self, k, v)
        if self.reduction not in ("mean", "normalized"):
            from ..errors import ConfigError
            raise ConfigError(f"weighting.reduction must be 'mean' or 'normalized', got '{self.reduction}'")
        self.reset_epoch()

    @classmethod
    def display(cls, spec: dict) -> str:
        """Short name for table rows (NS uses its rho: NS-WS / NS-LF)."""
        return cls.label or cls.name

    # -- the interface -------------------------------------------------------------------------------
    def weights(self, batch: WeightInput) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, batch: WeightInput) -> torch.Tensor:
        w = self.weights(batch).detach().float()
        # diagnostics stay on the device until the epoch ends: no host sync per training step
        self._epoch_weights.append(w)
        self._epoch_targets.append(batch.targets.detach())
        return w

    def reduce(self, weights: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        weighted = weights.to(losses.dtype) * losses
        if self.reduction == "normalized":
            return weighted.sum() / weights.sum().clamp_min(1e-12)
        return weighted.mean()

    # -- diagnostics ------------------------------------------------------------------------------------
    def reset_epoch(self) -> None:
        self._epoch_weights: List[torch.Tensor] = []
        self._epoch_targets: List[torch.Tensor] = []
        self._epoch_scores: List[torch.Tensor] = []

    def epoch_end(self, epoch: int, epochs: int, run_dir=None, runlog=None) -> Dict[str, float]:
        """Summary of this epoch's weights (logged and kept in the history), then reset."""
        if not self._epoch_weights:
            return {}
        w = self.gathered("_epoch_weights")
        stats = {"weight_mean": w.mean().item(), "weight_std": w.std(unbiased=False).item(),
                 "weight_min": w.min().item(), "weight_max": w.max().item()}
        stats.update(self.extra_stats())
        self.reset_epoch()
        return stats

    def extra_stats(self) -> Dict[str, float]:
        return {}

    def gathered(self, attr: str) -> torch.Tensor:
        """This epoch's per-step tensors of list ``attr`` (e.g. ``_epoch_scores``), concatenated, on the CPU."""
        parts = getattr(self, attr)
        return torch.cat(parts).cpu() if parts else torch.zeros(0)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@WEIGHTERS.register("none")
class NoWeighting(Weighter):
    """No weighting: the per-sample loss is averaged as is (the weighter is never called)."""


@WEIGHTERS.register("uniform")
class Uniform(Weighter):
    """w_i = 1 for every sample (a control: must give exactly the unweighted result)."""

    label = "uniform"

    def weights(self, batch):
        return torch.ones(batch.targets.shape[0], device=batch.targets.device)


def build_weighter(cfg, num_classes: int) -> Optional[Weighter]:
    spec = cfg.weighting
    if spec["name"] == "none":
        return None
    cls = WEIGHTERS.get(spec["name"], key="weighting.name")
    return cls(num_classes, **{k: v for k, v in spec.items() if k != "name"})
