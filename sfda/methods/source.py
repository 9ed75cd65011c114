"""Stage 1: supervised training on the labelled source domain (SHOT's recipe: label smoothing 0.1)."""
from __future__ import annotations


from ..config import Component
from ..losses import build_loss
from ..registry import LOSSES, METHODS
from ..datatypes import EvalPolicy
from .base import Batch, Method, StepInfo, StepOutput


@METHODS.register("source")
class SourceTraining(Method):
    """Per-sample supervised loss on ground-truth labels (weightable: NS in supervised training)."""

    label = "Source"
    stage = "source"
    evaluation = EvalPolicy.AFTER_EACH_EPOCH
    select_best = True
    defaults = {
        "loss": Component(LOSSES, "label_smoothing"),
        "select_best": True,  # keep the best weights on the validation split; false: report the last epoch
    }

    def setup(self, train_set, device):
        self.criterion = build_loss(self.loss, self.num_classes).to(device)
        self.criterion.update_labels(train_set.labels.to(device))
        self._labels = train_set.labels

    def training_step(self, batch: Batch, info: StepInfo) -> StepOutput:
        logits = self.model(batch.images)
        per_sample = self.criterion(logits, batch.labels, batch.indices)
        penalty = self.criterion.penalty(self.model)
        return StepOutput(reduced_loss=penalty, per_sample=per_sample, targets=batch.labels, logits=logits,
                          logs={"loss_cls": per_sample.detach().mean()})

    def sampler_labels(self):
        return self._labels
