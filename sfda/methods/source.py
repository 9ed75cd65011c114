"""Stage 1: supervised training on the labelled source domain (SHOT's recipe: label smoothing 0.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..datatypes import EvalPolicy
from ..losses import build_loss
from ..params import Spec, nested, param
from ..registry import LOSSES, METHODS
from .base import Batch, Method, MethodParams, StepInfo, StepOutput


@METHODS.register("source")
class SourceTraining(Method):
    """Per-sample supervised loss on ground-truth labels (weightable: NS in supervised training)."""

    label = "Source"
    stage = "source"
    evaluation = EvalPolicy.AFTER_EACH_EPOCH

    @dataclass
    class Params(MethodParams):
        loss: Spec = nested(LOSSES, "label_smoothing", help="the supervised loss")
        select_best: bool = param(
            True, help="keep the best weights on the validation split; false: report the last epoch"
        )

    hparams: SourceTraining.Params
    NOT_STATE = Method.NOT_STATE + ("train_labels",)  # the data's labels, set again by setup()

    @property
    def select_best(self) -> bool:  # type: ignore[override]
        return self.hparams.select_best

    def setup(self, train_set, device) -> None:
        super().setup(train_set, device)
        self.criterion = build_loss(self.hparams.loss, self.num_classes).to(device)
        self.criterion.update_labels(train_set.labels.to(device))
        self.train_labels = train_set.labels

    def training_step(self, batch: Batch, info: StepInfo) -> StepOutput:
        logits = self.model(batch.images)
        per_sample = self.criterion(logits, batch.labels, batch.indices)
        penalty = self.criterion.penalty(self.model)
        return StepOutput(
            reduced_loss=penalty,
            per_sample=per_sample,
            targets=batch.labels,
            logits=logits,
            logs={"loss_cls": per_sample.detach().mean()},
        )

    def sampler_labels(self) -> Optional[torch.Tensor]:
        return self.train_labels
