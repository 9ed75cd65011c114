"""The method interface. A method is one class registered in ``METHODS``; the shared trainer runs it.

The trainer owns the loop (epochs, batches, optimiser, lr schedule, mixed precision, evaluation passes,
logging, checkpoints and resume). A method only says:

- ``setup()``: what to freeze once the starting weights are loaded (SHOT freezes the classifier);
- ``param_groups()``: which parameters train, with which lr multiplier;
- ``on_epoch_start(epoch, inference)``: called before each epoch with an eval-mode pass over the evaluation set
  (the target in adaptation). SHOT clusters pseudo-labels from it; the same pass is the evaluation of those
  weights, so there is no second pass;
- ``training_step(batch, info)``: returns a :class:`StepOutput`. Its ``per_sample`` term (pseudo-label or
  supervised loss, one value per sample, coefficient included) is multiplied by the configured weighter's
  weights and reduced by the trainer; ``loss`` holds the other, already reduced, terms;
- ``state_dict()`` / ``load_state_dict()``: extra state for resume (memory banks, ...).

``defaults`` lists the method's hyperparameters; they are valid keys of the config's ``method`` section.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn as nn

from ..datatypes import Batch, EvalPolicy, Inference, StepInfo, StepOutput


class Method:
    name: str = ""
    label: str = ""          # display name in tables
    stage: str = "adapt"     # "source" (supervised) or "adapt" (source-free)
    defaults: dict = {}
    evaluation: EvalPolicy = EvalPolicy.BEFORE_EACH_EPOCH
    select_best: bool = False    # with AFTER_EACH_EPOCH: keep the weights with the best eval score

    def __init__(self, model: nn.Module, num_classes: int, params: dict, cfg):
        self.model = model
        self.num_classes = num_classes
        self.cfg = cfg
        for k, v in {**self.defaults, **params}.items():
            if k != "name":
                setattr(self, k, v)

    @classmethod
    def display(cls, spec: dict) -> str:
        """Row name in tables for this method with the config section ``spec`` (SHOT with cls_par 0: SHOT-IM)."""
        return cls.label or cls.name.upper()

    # -- hooks -----------------------------------------------------------------------------------------
    def setup(self, train_set, device) -> None:
        """Called once the starting weights are loaded and the model is on its device."""

    def param_groups(self) -> List[dict]:
        o = self.cfg.optim
        groups = []
        for part, mult in (("netF", o.backbone_lr_mult), ("netB", o.bottleneck_lr_mult), ("netC", o.classifier_lr_mult)):
            params = [p for p in getattr(self.model, part).parameters() if p.requires_grad]
            if params and mult > 0:
                groups.append({"params": params, "lr_mult": mult, "name": part})
            elif mult == 0:
                for p in params:
                    p.requires_grad_(False)
        return groups

    def on_epoch_start(self, epoch: int, inference: Inference) -> Dict[str, float]:
        return {}

    def training_step(self, batch: Batch, info: StepInfo) -> StepOutput:
        raise NotImplementedError

    def sampler_labels(self) -> Optional[torch.Tensor]:
        """Labels of the training set for class-aware samplers (pseudo-labels in adaptation)."""
        return None

    def train_mode(self) -> None:
        self.model.train()

    # -- resume state: complete by construction ---------------------------------------------------------
    # Everything a method keeps between steps lives in attributes: tensors (pseudo-labels, confidences) and
    # objects with state_dict/load_state_dict (its criterion, memory banks). All of them are saved; the
    # model's weights are saved by the trainer, and the config-derived attributes are rebuilt by setup().
    NOT_STATE = ("model", "cfg", "hparams", "num_classes")

    def state_dict(self) -> dict:
        out = {}
        for key, value in vars(self).items():
            if key in self.NOT_STATE:
                continue
            if torch.is_tensor(value):
                out[key] = value
            elif hasattr(value, "state_dict") and hasattr(value, "load_state_dict"):
                out[key] = value.state_dict()
        return out

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            current = getattr(self, key, None)
            if current is not None and not torch.is_tensor(current) and hasattr(current, "load_state_dict"):
                current.load_state_dict(value)
            else:
                setattr(self, key, value)


def freeze(module: nn.Module) -> None:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
