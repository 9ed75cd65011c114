"""The sampler interface: per epoch, from the current labels of the training set (ground truth in source
training, pseudo-labels after each refresh in adaptation; None if the method has none), a sampler returns a
torch Sampler, or None for plain shuffling. The registered ``none`` sampler always shuffles."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch.utils.data import Sampler

from ..params import NoParams, hparams_for
from ..params import Params as ComponentParams
from ..registry import SAMPLERS


class ClassSampler:
    Params = NoParams  # a sampler with hyperparameters declares its own Params dataclass
    name: str = ""
    label = ""

    def __init__(self, num_classes: int, hparams: Optional[ComponentParams] = None, **overrides: Any):
        self.num_classes = num_classes
        self.hparams: Any = hparams_for(type(self), hparams, overrides, prefix="sampler.")

    def build(
        self, labels: Optional[torch.Tensor], epoch: int, epochs: int, generator: torch.Generator
    ) -> Optional[Sampler]:
        """The epoch's sampler over the training set, or None for plain shuffling."""
        raise NotImplementedError


@SAMPLERS.register("none")
class Shuffle(ClassSampler):
    """Plain shuffling (instance-balanced)."""

    def build(self, labels, epoch, epochs, generator):
        return None


def build_sampler(cfg: Any, num_classes: int) -> ClassSampler:
    """The configured sampler (``sampler.name``; ``none`` shuffles)."""
    return SAMPLERS.build(cfg.sampler.name, cfg.sampler, num_classes, key="sampler.name", prefix="sampler.")
