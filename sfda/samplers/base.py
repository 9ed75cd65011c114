"""The sampler interface: per epoch, from the current labels of the training set (ground truth in source
training, pseudo-labels after each refresh in adaptation), a sampler returns a torch Sampler, or None for
plain shuffling."""
from __future__ import annotations

from typing import Optional

import torch
from torch.utils.data import Sampler

from ..registry import SAMPLERS


class ClassSampler:
    defaults: dict = {}
    label = ""

    def __init__(self, num_classes: int, **params):
        self.num_classes = num_classes
        for k, v in {**self.defaults, **params}.items():
            setattr(self, k, v)

    def build(self, labels: torch.Tensor, epoch: int, epochs: int, generator: torch.Generator) -> Optional[Sampler]:
        raise NotImplementedError


@SAMPLERS.register("none")
class Shuffle(ClassSampler):
    """Plain shuffling (instance-balanced)."""

    def build(self, labels, epoch, epochs, generator):
        return None


def build_sampler(cfg, num_classes: int) -> Optional[ClassSampler]:
    spec = cfg.sampler
    if spec["name"] == "none":
        return None
    cls = SAMPLERS.get(spec["name"], key="sampler.name")
    return cls(num_classes, **{k: v for k, v in spec.items() if k != "name"})
