"""SHOT (Liang et al., ICML 2020): frozen weight-normalised classifier, information maximisation, and
clustering pseudo-labels refreshed every epoch (with the 2022 fix).

    L = ent_par * (mean_i H(p_i) - H(mean_i p_i)) + cls_par * mean_i w_i * l(z_i, y_hat_i)

``l`` is the configured pseudo-label loss (CE by default; any registered loss) and ``w_i`` the configured
weighter's weights (none by default; NS-WS in the paper). ``cls_par: 0`` gives SHOT-IM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch

from ..clustering import shot_pseudo_labels
from ..datatypes import Inference
from ..losses import build_loss
from ..losses.information import im_loss
from ..params import Spec, nested, param
from ..registry import LOSSES, METHODS
from .base import Batch, Method, MethodParams, StepInfo, StepOutput


@METHODS.register("shot")
class SHOT(Method):
    """SHOT: frozen WN classifier, information maximisation + clustering pseudo-labels (cls_par 0: SHOT-IM)."""

    label = "SHOT"

    @dataclass
    class Params(MethodParams):
        cls_par: float = param(0.3, low=0.0, help="beta: weight of the pseudo-label loss (0: SHOT-IM)")
        ent_par: float = param(1.0, low=0.0, help="weight of the information-maximisation loss")
        gent: bool = param(True, help="include the diversity term -H(mean p)")
        epsilon: float = param(1e-5, low=0.0, help="in the entropies' logs")
        threshold: int = param(0, low=0, help="a class is live in clustering if it has more than this many members")
        distance: Literal["cosine", "euclidean"] = param("cosine", help="clustering distance")
        pl_loss: Spec = nested(LOSSES, "ce", help="the pseudo-label loss")
        pl_warmup_epochs: int = param(0, low=0, help="epochs without the pseudo-label term (VisDA-C: 1)")
        freeze_classifier: bool = param(True, help="keep the source classifier (the hypothesis) fixed")

    hparams: SHOT.Params

    @classmethod
    def display(cls, spec: dict) -> str:
        return "SHOT-IM" if spec.get("cls_par") == 0 else cls.label

    @property
    def uses_labels(self) -> bool:
        return self.hparams.cls_par > 0

    def setup(self, train_set, device) -> None:
        super().setup(train_set, device)
        self.criterion = build_loss(self.hparams.pl_loss, self.num_classes).to(device)
        self.pseudo: Optional[torch.Tensor] = None

    def on_epoch_start(self, epoch: int, inference: Inference):
        if not self.uses_labels:
            return {}
        clustering = shot_pseudo_labels(
            inference.features, inference.probs, threshold=self.hparams.threshold, distance=self.hparams.distance
        )
        self.pseudo = clustering.labels
        self.criterion.update_labels(clustering.labels)
        return {"pl_accuracy": 100.0 * (clustering.labels == inference.labels).float().mean().item()}

    def training_step(self, batch: Batch, info: StepInfo) -> StepOutput:
        hp = self.hparams
        logits = self.model(batch.images)
        probs = torch.softmax(logits.float(), dim=1)
        loss = hp.ent_par * im_loss(probs, hp.epsilon, hp.gent) if hp.ent_par > 0 else 0.0
        out = StepOutput(
            reduced_loss=loss, logits=logits, logs={"loss_im": loss.detach() if torch.is_tensor(loss) else loss}
        )
        if self.uses_labels and info.epoch >= hp.pl_warmup_epochs:
            assert self.pseudo is not None, "on_epoch_start sets the pseudo-labels before training"
            targets = self.pseudo[batch.indices]
            per_sample = self.criterion(logits, targets, batch.indices)
            out.per_sample = hp.cls_par * per_sample
            out.targets = targets
            out.reduced_loss = out.reduced_loss + self.criterion.penalty(self.model)
            out.logs["loss_pl"] = per_sample.detach().mean()
        return out

    def sampler_labels(self) -> Optional[torch.Tensor]:
        return self.pseudo
