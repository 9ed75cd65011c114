"""A complete SFDA method defined outside the sfda package (see docs/adding-a-method.md).

EntMin-PL: information maximisation (mean entropy of the predictions minus the entropy of their batch mean,
as SHOT-IM) plus a cross-entropy on the model's own confident predictions. The cross-entropy is returned
per sample, so any weighter (``weighting: ns`` ...) multiplies it, scoring each sample with its pseudo-label.

Run it:   sfda --plugin examples/my_method.py run -c examples/my_method.yaml
   or:    SFDA_PLUGINS=examples/my_method.py sfda run -c examples/my_method.yaml
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sfda.methods import Method, StepOutput
from sfda.params import Params, param
from sfda.registry import METHODS


@METHODS.register("entmin_pl")
class EntMinPL(Method):
    """Entropy minimisation + diversity, and CE on the model's confident argmax predictions."""

    label = "EntMin-PL"

    @dataclass
    class Params(Params):  # the keys of the config's `method:` section, checked when the config loads
        ent_par: float = param(1.0, low=0.0, help="weight of the information-maximisation term")
        pl_par: float = param(0.3, low=0.0, help="weight of the pseudo-label cross-entropy")
        threshold: float = param(0.0, low=0.0, high=1.0, help="least confidence of a pseudo-label")
        freeze_classifier: bool = param(True, help="keep the source classifier (the hypothesis), as SHOT does")

    def training_step(self, batch, info):
        hp = self.hparams
        logits = self.model(batch.images)
        probs = torch.softmax(logits.float(), dim=1)
        entropy = -(probs * torch.log(probs + 1e-5)).sum(dim=1).mean()
        pbar = probs.mean(dim=0)
        diversity = (pbar * torch.log(pbar + 1e-5)).sum()  # = -H(mean prediction)
        confidence, pseudo = probs.detach().max(dim=1)
        ce = F.cross_entropy(logits.float(), pseudo, reduction="none") * (confidence >= hp.threshold)
        return StepOutput(
            reduced_loss=hp.ent_par * (entropy + diversity),  # batch-level terms, not weighted
            per_sample=hp.pl_par * ce,  # weighted per sample by the configured weighter
            targets=pseudo,  # what the weighter scores (NS: the pseudo-label)
            logits=logits,
            logs={"entropy": entropy.detach(), "loss_pl": ce.detach().mean()},
        )
