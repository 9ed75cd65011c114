"""A complete SFDA method defined outside the sfda package (see docs/adding-a-method.md).

EntMin-PL: information maximisation (mean entropy of the predictions minus the entropy of their batch mean,
as SHOT-IM) plus a cross-entropy on the model's own confident predictions. The cross-entropy is returned
per sample, so any weighter (``weighting: ns`` ...) multiplies it, scoring each sample with its pseudo-label.

Run it:   sfda --plugin examples/my_method.py run -c examples/my_method.yaml
   or:    SFDA_PLUGINS=examples/my_method.py sfda run -c examples/my_method.yaml
"""
import torch
import torch.nn.functional as F

from sfda.methods import Method, StepOutput
from sfda.methods.base import freeze
from sfda.registry import METHODS


@METHODS.register("entmin_pl")
class EntMinPL(Method):
    """Entropy minimisation + diversity, and CE on the model's confident argmax predictions."""

    label = "EntMin-PL"
    defaults = {              # hyperparameters = valid keys of the config's `method:` section
        "ent_par": 1.0,       # weight of the information-maximisation term
        "pl_par": 0.3,        # weight of the pseudo-label cross-entropy
        "threshold": 0.0,     # only predictions at least this confident are used as pseudo-labels
    }

    def setup(self, train_set, device):
        freeze(self.model.netC)        # keep the source classifier (the hypothesis), as SHOT does

    def train_mode(self):
        self.model.train()
        self.model.netC.eval()

    def training_step(self, batch, info):
        logits = self.model(batch.images)
        p = torch.softmax(logits.float(), dim=1)
        entropy = -(p * torch.log(p + 1e-5)).sum(dim=1).mean()
        pbar = p.mean(dim=0)
        diversity = (pbar * torch.log(pbar + 1e-5)).sum()          # = -H(mean prediction)
        conf, pseudo = p.detach().max(dim=1)
        ce = F.cross_entropy(logits.float(), pseudo, reduction="none") * (conf >= self.threshold)
        return StepOutput(
            reduced_loss=self.ent_par * (entropy + diversity),   # batch-level terms, not weighted
            per_sample=self.pl_par * ce,                 # weighted per sample by the configured weighter
            targets=pseudo,                              # what the weighter scores (NS: the pseudo-label)
            logits=logits,
            logs={"entropy": entropy.detach(), "loss_pl": ce.detach().mean()},
        )
