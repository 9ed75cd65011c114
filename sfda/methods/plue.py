"""PLUE (Litrico et al., CVPR 2023): AdaContrast's skeleton with an uncertainty weight on the pseudo-label
loss, negative learning, a temporal label memory that removes contrastive negatives, and a bank rebuilt from
the eval pass every epoch.

Before every epoch: the bank is replaced by ``bank_size`` (16384) random rows (all if N is smaller) of the eval
pass's features and softmax predictions. Per batch (weak x^w, strong x^s1, x^s2):

1. the query model on x^w (with gradient): f^w, z^w; refinement p_hat_i = mean prediction of the ``k`` nearest
   bank rows (cosine), y_hat_i = argmax p_hat_i;
2. momentum update, q_i from x^s1 (logits z^s_i), k_i from x^s2 with the key model;
3. InfoNCE with temporal exclusion: with M the N x T label memory (T = ``temporal_length``, random at the start),
   queue slot m (a key of sample j_m) is a negative for query i only if M[i, t] != M[j_m, t] for every t;
4. enqueue (k_i, y_hat_i, i); M[i, c] = y_hat_i with c the memory column, then c = epoch mod T (so column
   e mod T holds the labels of epoch e; the first batch of an epoch writes the previous epoch's column);
5. uncertainty weight w_i = exp(-H2(p_hat_i) / log2 C), H2(p) = -sum_c p_c log2(p_c + 1e-5), in [1/e, 1];
6. the weightable term per_sample_i = w_i l_i, with l_i = negative learning -log(clamp(1 - softmax(z^s_i)[yc_i],
   1e-5, 1)) on a random complementary label yc_i = (y_hat_i + r_i) mod C, r_i ~ U{1..C-1} (``pl_loss: nl``), or
   CE(z^s_i, y_hat_i) (``pl_loss: ce``); ``reweighting: false`` drops w_i;
7. L = mean_i v_i per_sample_i + InfoNCE + div(z^w) + div(z^s) (v_i: the trainer's weighter, 1 by default; NS
   multiplies PLUE's own weight, reduced as a plain mean like the reference);
8. the bank's next rows (ring pointer) get the query model's f^w and softmax(z^w) of this step.

Differences from the reference (docs/methods.md): last-epoch argmax accuracy on the adaptation set (the
reference reports kNN-refined labels of another split at its best epoch), ImageNet statistics for every view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..datatypes import Inference
from ..params import param
from ..registry import METHODS
from ._contrastive import ContrastiveMethod, RingBank, batch_diversity, info_nce, temporal_mask
from .base import Batch, StepInfo, StepOutput


def uncertainty_weight(refined: torch.Tensor, epsilon: float = 1e-5) -> torch.Tensor:
    """w_i = exp(-H2(p_hat_i) / log2 C) with H2 the base-2 entropy of the neighbour-averaged prediction [B, C]."""
    entropy = -(refined * torch.log2(refined + epsilon)).sum(dim=1)
    return torch.exp(-entropy / math.log2(refined.shape[1]))


def negative_learning(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-log(clamp(1 - p[yc], 1e-5, 1)) for a random complementary label yc = (y + r) mod C, r ~ U{1..C-1}."""
    num_classes = logits.shape[1]
    shift = torch.randint(1, num_classes, labels.shape, device=labels.device)
    complementary = (labels + shift) % num_classes
    p = torch.softmax(logits.float(), dim=1).gather(1, complementary.view(-1, 1)).squeeze(1)
    return -torch.log(torch.clamp(1.0 - p, min=1e-5, max=1.0))


@METHODS.register("plue")
class PLUE(ContrastiveMethod):
    """PLUE: entropy-weighted negative learning on kNN-refined labels, temporally masked InfoNCE, diversity."""

    label = "PLUE"

    @dataclass
    class Params(ContrastiveMethod.Params):
        cls_par: float = param(1.0, low=0.0, help="weight of the pseudo-label term")
        pl_loss: Literal["nl", "ce"] = param("nl", help="nl: negative learning (the reference's default); ce")
        reweighting: bool = param(True, help="PLUE's uncertainty weight w_i (false: the 'unweighted' ablation)")
        temporal_length: int = param(5, low=1, help="epochs of pseudo-labels kept per sample")
        bank_size: int = param(16384, low=1, help="rows drawn from the eval pass into the bank every epoch")

    hparams: PLUE.Params

    @classmethod
    def display(cls, spec: dict) -> str:
        return cls.label if spec.get("reweighting", True) else "PLUE (unweighted)"

    def setup(self, train_set, device) -> None:
        super().setup(train_set, device)
        self.bank = RingBank(self.hparams.knn_backend).to(device)
        self.memory = torch.randint(0, self.num_classes, (self.train_size, self.hparams.temporal_length), device=device)
        self.memory_column = torch.zeros((), dtype=torch.long, device=device)

    def on_epoch_start(self, epoch: int, inference: Inference):
        self.fill_bank(inference, self.hparams.bank_size)
        return self.refined_label_accuracy(inference)

    def training_step(self, batch: Batch, info: StepInfo) -> StepOutput:
        hp = self.hparams
        weak, strong1, strong2 = self.views(batch)
        feats_w, logits_w = self.model(weak, return_features=True)
        with torch.no_grad():
            refined = self.bank.vote(feats_w, hp.k)
            pseudo = refined.argmax(dim=1)
        keys = self.keys(strong2)
        feats_q, logits = self.model(strong1, return_features=True)
        q = F.normalize(feats_q.float(), dim=1)
        indices = batch.indices.to(self.memory.device)
        keep = temporal_mask(self.memory[indices], self.memory[self.queue.indices])
        contrast = info_nce(q, keys, self.queue.keys, keep, hp.temperature).mean()
        self.queue.enqueue(keys, pseudo, indices)
        self.memory[indices, self.memory_column] = pseudo.to(self.memory.device)
        self.memory_column.fill_(info.epoch % hp.temporal_length)
        loss = (
            negative_learning(logits, pseudo)
            if hp.pl_loss == "nl"
            else F.cross_entropy(logits.float(), pseudo, reduction="none")
        )
        weight = uncertainty_weight(refined) if hp.reweighting else torch.ones_like(loss)
        per_sample = hp.cls_par * weight * loss
        div = batch_diversity(logits_w, hp.epsilon) + batch_diversity(logits, hp.epsilon)
        self.bank.write(feats_w.detach(), torch.softmax(logits_w.detach().float(), dim=1))
        return StepOutput(
            reduced_loss=hp.contrast_par * contrast + hp.div_par * div,
            per_sample=per_sample,
            targets=pseudo,
            logits=logits,
            weight_images=weak if hp.weight_view == "weak" else strong1,
            logs={
                **self.loss_logs(pl=loss.mean(), ctr=contrast, div=div),
                "plue_weight": weight.mean(),
                "negatives_kept": keep.float().mean(),
                "pl_overrules": (pseudo != logits_w.detach().argmax(1)).float().mean(),
            },
        )
