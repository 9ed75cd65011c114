"""The data types that methods, weighters and the trainer exchange, and what the trainer uses of a method
(:class:`TrainableMethod`). This module depends only on torch, so every layer may import it (engine, methods,
weighters, losses) without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional, Protocol, Union

import torch
import torch.nn as nn


@dataclass
class Batch:
    """One training batch, on the model's device.

    ``images`` is [N, C, H, W], or [N, V, C, H, W] for methods that train on several views of each sample: the
    contrastive methods (AdaContrast, PLUE) make their training set return a weak and two strong views
    (:mod:`sfda.data.views`), so their batches are [N, 3, C, H, W] in that order (weak, strong 1, strong 2)."""

    images: torch.Tensor
    labels: torch.Tensor  # ground truth: supervised methods train on it; adaptation methods must not
    indices: torch.Tensor  # dataset indices (pseudo-label lookup, memory banks)


@dataclass
class StepInfo:
    """Where a training step is in the run."""

    epoch: int  # 0-based
    epochs: int
    iteration: int  # 0-based, over the whole run
    total_iterations: int

    @property
    def progress(self) -> float:
        return self.iteration / max(self.total_iterations, 1)


@dataclass
class StepOutput:
    """What a method's ``training_step`` returns. The trainer multiplies ``per_sample`` by the weighter's
    weights, reduces it and adds ``reduced_loss`` (terms that are already reduced over the batch)."""

    reduced_loss: Union[torch.Tensor, float] = 0.0  # batch-level terms (IM, diversity, penalties), not weighted
    per_sample: Optional[torch.Tensor] = None  # [N] weightable loss, coefficient included
    targets: Optional[torch.Tensor] = None  # labels of per_sample (what a weighter scores)
    logits: Optional[torch.Tensor] = None  # the batch's logits (detached by the trainer for weighters)
    weight_images: Optional[torch.Tensor] = None  # images a weighter scores, if not the batch images
    logs: Dict[str, object] = field(default_factory=dict)  # floats or detached tensors (averaged per epoch)


@dataclass
class Inference:
    """One eval-mode pass over a dataset, in dataset order."""

    features: torch.Tensor  # [N, D] bottleneck features
    logits: torch.Tensor  # [N, K]
    labels: torch.Tensor  # [N] ground truth (used for logging only in adaptation)
    backbone_features: Optional[torch.Tensor] = None  # [N, D_F] netF outputs, for a method that asks (TPDS)

    @property
    def probs(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=1)


@dataclass
class WeightInput:
    """What a weighter sees of a training step."""

    model: nn.Module
    images: torch.Tensor  # the batch as fed to training (after augmentation)
    targets: torch.Tensor  # the labels the loss uses (ground truth or pseudo-labels)
    logits: Optional[torch.Tensor] = None  # the training pass's logits, detached
    indices: Optional[torch.Tensor] = None  # dataset indices
    epoch: int = 0
    progress: float = 0.0  # 0..1 through training


class EvalPolicy(Enum):
    """When the trainer evaluates, and which weights a run ends with (a method declares one)."""

    BEFORE_EACH_EPOCH = "before_each_epoch"  # adaptation: one pass before every epoch (handed to the method's
    #                                           on_epoch_start) and one after the last; the last epoch is reported
    AFTER_EACH_EPOCH = "after_each_epoch"  # supervised: validation after every epoch; with select_best the
    #                                           best-scoring weights are kept, otherwise the last


class TrainableMethod(Protocol):
    """What the trainer uses of a method (``sfda.methods.base.Method`` provides it)."""

    model: nn.Module
    num_classes: int
    evaluation: EvalPolicy
    select_best: bool

    def param_groups(self) -> List[dict]: ...
    def on_epoch_start(self, epoch: int, inference: Inference) -> Dict[str, Any]: ...
    def training_step(self, batch: Batch, info: StepInfo) -> StepOutput: ...
    def sampler_labels(self) -> Optional[torch.Tensor]: ...
    def train_mode(self) -> None: ...
    def state_dict(self) -> Dict[str, Any]: ...
    def load_state_dict(self, state: Dict[str, Any]) -> None: ...
