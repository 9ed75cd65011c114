"""The method interface. A method is one class registered in ``METHODS``; the shared trainer runs it.

The trainer owns the loop (epochs, batches, optimiser, lr schedule, mixed precision, evaluation passes,
logging, checkpoints and resume). A method only says:

- ``Params``: its hyperparameters (a :class:`sfda.params.Params` dataclass; the valid keys of the config's
  ``method`` section, checked when the config loads), read as ``self.hparams.<key>``. A ``freeze_classifier``
  field makes the base freeze the classifier in ``setup()`` and keep it in eval mode while training;
- ``setup()``: what to build once the starting weights are loaded (criterion, memory banks);
- ``param_groups()``: which parameters train, with which lr multiplier;
- ``on_epoch_start(epoch, inference)``: called before each epoch with an eval-mode pass over the evaluation set
  (the target in adaptation). SHOT clusters pseudo-labels from it; the same pass is the evaluation of those
  weights, so there is no second pass;
- ``training_step(batch, info)``: returns a :class:`StepOutput`. Its ``per_sample`` term (pseudo-label or
  supervised loss, one value per sample, coefficient included) is multiplied by the configured weighter's
  weights and reduced by the trainer; ``reduced_loss`` holds the other, already reduced, terms.

Resume state is complete by construction: ``state_dict()`` saves every tensor attribute and every attribute
with ``state_dict``/``load_state_dict`` (criterion, memory banks); keep whatever must survive a restart there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Union

import torch
from torch import nn

from ..datatypes import Batch, EvalPolicy, Inference, StepInfo, StepOutput
from ..models.network import SFDANet
from ..params import Params as ParamsBase
from ..params import hparams_for

__all__ = ["Batch", "EvalPolicy", "Inference", "Method", "MethodParams", "StepInfo", "StepOutput", "freeze"]


@dataclass
class MethodParams(ParamsBase):
    """Base of a method's ``Params`` (``class Params(MethodParams)`` inside the method's class)."""


class Method:
    name: str = ""
    label: str = ""  # display name in tables
    stage: str = "adapt"  # "source" (supervised) or "adapt" (source-free)
    evaluation: EvalPolicy = EvalPolicy.BEFORE_EACH_EPOCH
    select_best: bool = False  # with AFTER_EACH_EPOCH: keep the weights with the best eval score
    inference_backbone: bool = False  # the epoch-start pass also keeps the netF outputs (Inference.backbone_features)

    def __init__(
        self,
        model: SFDANet,
        num_classes: int,
        hparams: Union[ParamsBase, Dict[str, Any], None] = None,
        cfg: Any = None,
        **overrides: Any,
    ):
        """``hparams``: the typed parameters (the class's ``Params``), or the config's ``method`` section as a
        dict (checked as the config loader checks it); ``overrides``: single values on top (tests, code)."""
        self.model = model
        self.num_classes = num_classes
        self.cfg = cfg
        if isinstance(hparams, dict):  # a config section: checked and converted like keyword values
            overrides = {**hparams, **overrides}
            hparams = None
        self.hparams: Any = hparams_for(type(self), hparams, overrides, prefix="method.")

    @classmethod
    def display(cls, spec: dict) -> str:
        """Row name in tables for this method with the config section ``spec`` (SHOT with cls_par 0: SHOT-IM)."""
        return cls.label or cls.name.upper()

    # -- hooks -----------------------------------------------------------------------------------------
    @property
    def classifier_frozen(self) -> bool:
        return bool(getattr(self.hparams, "freeze_classifier", False))

    def setup(self, train_set, device) -> None:
        """Called once the starting weights are loaded and the model is on its device (subclasses call it first)."""
        if self.classifier_frozen:
            freeze(self.model.netC)

    def param_groups(self) -> List[dict]:
        optim = self.cfg.optim
        groups = []
        for part, mult in (
            ("netF", optim.backbone_lr_mult),
            ("netB", optim.bottleneck_lr_mult),
            ("netC", optim.classifier_lr_mult),
        ):
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
        """Training mode for the epoch; a frozen classifier stays in eval mode."""
        self.model.train()
        if self.classifier_frozen:
            self.model.netC.eval()

    # -- resume state: complete by construction ---------------------------------------------------------
    # Everything a method keeps between steps lives in attributes: tensors (pseudo-labels, confidences) and
    # objects with state_dict/load_state_dict (its criterion, memory banks). All of them are saved; the
    # model's weights are saved by the trainer, and the config-derived attributes are rebuilt by setup().
    NOT_STATE: tuple = ("model", "cfg", "hparams", "num_classes")

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
