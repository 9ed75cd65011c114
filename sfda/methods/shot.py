"""SHOT (Liang et al., ICML 2020): frozen weight-normalised classifier, information maximisation, and
clustering pseudo-labels refreshed every epoch (with the 2022 fix).

    L = ent_par * (mean_i H(p_i) - H(mean_i p_i)) + cls_par * mean_i w_i * l(z_i, y_hat_i)

``l`` is the configured pseudo-label loss (CE by default; any registered loss) and ``w_i`` the configured
weighter's weights (none by default; NS-WS in the paper). ``cls_par: 0`` gives SHOT-IM.
"""
from __future__ import annotations

import torch

from ..clustering import shot_pseudo_labels
from ..config import Component
from ..datatypes import Inference
from ..losses import build_loss
from ..losses.information import im_loss
from ..registry import LOSSES, METHODS
from .base import Batch, Method, StepInfo, StepOutput, freeze


@METHODS.register("shot")
class SHOT(Method):
    """SHOT: frozen WN classifier, information maximisation + clustering pseudo-labels (cls_par 0: SHOT-IM)."""

    label = "SHOT"
    defaults = {
        "cls_par": 0.3,           # beta: weight of the pseudo-label loss (0: SHOT-IM)
        "ent_par": 1.0,           # weight of the information-maximisation loss
        "gent": True,             # include the diversity term -H(mean p)
        "epsilon": 1e-5,
        "threshold": 0,           # a class is live in clustering if it has more than this many members
        "distance": "cosine",
        "pl_loss": Component(LOSSES, "ce"),
        "pl_warmup_epochs": 0,    # epochs without the pseudo-label term (VisDA-C: 1)
        "freeze_classifier": True,
    }

    @classmethod
    def display(cls, spec: dict) -> str:
        return "SHOT-IM" if spec.get("cls_par") == 0 else cls.label

    def setup(self, train_set, device):
        if self.freeze_classifier:
            freeze(self.model.netC)
        self.criterion = build_loss(self.pl_loss, self.num_classes).to(device)
        self.pseudo = None
        self.uses_labels = self.cls_par > 0

    def train_mode(self):
        self.model.train()
        if self.freeze_classifier:
            self.model.netC.eval()

    def on_epoch_start(self, epoch: int, inference: Inference):
        if not self.uses_labels:
            return {}
        cl = shot_pseudo_labels(inference.features, inference.probs, threshold=self.threshold, distance=self.distance)
        self.pseudo = cl.labels
        self.criterion.update_labels(self.pseudo)
        return {"pl_accuracy": 100.0 * (cl.labels == inference.labels).float().mean().item()}

    def training_step(self, batch: Batch, info: StepInfo) -> StepOutput:
        logits = self.model(batch.images)
        probs = torch.softmax(logits.float(), dim=1)
        loss = self.ent_par * im_loss(probs, self.epsilon, self.gent) if self.ent_par > 0 else 0.0
        out = StepOutput(reduced_loss=loss, logits=logits, logs={"loss_im": loss.detach() if torch.is_tensor(loss) else loss})
        if self.uses_labels and info.epoch >= self.pl_warmup_epochs:
            targets = self.pseudo[batch.indices]
            per_sample = self.criterion(logits, targets, batch.indices)
            out.per_sample = self.cls_par * per_sample
            out.targets = targets
            out.reduced_loss = out.reduced_loss + self.criterion.penalty(self.model)
            out.logs["loss_pl"] = per_sample.detach().mean()
        return out

    def sampler_labels(self):
        return self.pseudo
