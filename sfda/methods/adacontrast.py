"""AdaContrast (Chen et al., CVPR 2022): pseudo-labels refined by nearest-neighbour soft voting, CE on a strong
view, class-aware InfoNCE against a momentum-key queue, and a diversity term.

Each sample comes as a weak view x^w and two strong views x^s1, x^s2 (``ContrastiveMethod``). Per batch:

1. refinement (no gradient): the query model's feature of x^w (train mode, so BatchNorm statistics move as in
   the reference) -> p_hat_i = mean of the predictions of its ``k`` nearest bank rows (cosine), y_hat_i = argmax;
2. momentum update of the key model, then q_i = normalised feature of x^s1 (with its logits z^s_i) and
   k_i = normalised key-model feature of x^s2;
3. per-sample CE l_i = CE(z^s_i, y_hat_i) (the weightable term), class-aware InfoNCE (a queue key is a negative
   only if its pseudo-label differs from y_hat_i), diversity sum_c pbar_c log(pbar_c + eps) of softmax(z^s):

       L = mean_i w_i alpha l_i + beta mean_i InfoNCE_i + eta div          (w_i: the weighter's, 1 by default)

4. enqueue (k_i, y_hat_i), then write the key model's (train-mode) feature and softmax of x^w into the bank
   at its ring pointer.

The bank holds the whole target set (``bank_size`` 0), filled once from the eval pass before epoch 0 in a random
order; afterwards only step 4 changes it. Differences from the reference code (docs/methods.md): the negatives'
mask is taken before this batch is enqueued (the reference masks the B just-overwritten slots with this
batch's labels); the queue has min(queue_size, N) slots; the strong crop is taken from the 256x256 resized image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..datatypes import Inference
from ..params import param
from ..registry import METHODS
from ._contrastive import ContrastiveMethod, RingBank, batch_diversity, class_aware_mask, info_nce
from .base import Batch, StepInfo, StepOutput


@METHODS.register("adacontrast")
class AdaContrast(ContrastiveMethod):
    """AdaContrast: kNN-refined pseudo-labels, CE on a strong view, class-aware InfoNCE, diversity."""

    label = "AdaContrast"

    @dataclass
    class Params(ContrastiveMethod.Params):
        cls_par: float = param(1.0, low=0.0, help="alpha: weight of the pseudo-label CE")
        bank_size: int = param(0, low=0, help="rows of the refinement bank (0: the whole target set)")

    hparams: AdaContrast.Params

    def setup(self, train_set, device) -> None:
        super().setup(train_set, device)
        self.bank = RingBank(self.hparams.knn_backend).to(device)

    def on_epoch_start(self, epoch: int, inference: Inference):
        # The bank is built once, from the eval pass before epoch 0 (a resumed run has it back from its state).
        if not self.bank.ready:
            self.fill_bank(inference, self.hparams.bank_size or None)
        return self.refined_label_accuracy(inference)

    def training_step(self, batch: Batch, info: StepInfo) -> StepOutput:
        hp = self.hparams
        weak, strong1, strong2 = self.views(batch)
        with torch.no_grad():
            feats_w, logits_w = self.model(weak, return_features=True)
            pseudo = self.bank.vote(feats_w, hp.k).argmax(dim=1)
        keys = self.keys(strong2)
        feats_q, logits = self.model(strong1, return_features=True)
        q = F.normalize(feats_q.float(), dim=1)
        keep = class_aware_mask(pseudo, self.queue.labels)
        contrast = info_nce(q, keys, self.queue.keys, keep, hp.temperature).mean()
        per_sample = F.cross_entropy(logits.float(), pseudo, reduction="none")
        div = batch_diversity(logits, hp.epsilon)
        self.queue.enqueue(keys, pseudo, batch.indices)
        with torch.no_grad():
            feats_kw, logits_kw = self.key_model(weak, return_features=True)
            self.bank.write(feats_kw, torch.softmax(logits_kw.float(), dim=1))
        return StepOutput(
            reduced_loss=hp.contrast_par * contrast + hp.div_par * div,
            per_sample=hp.cls_par * per_sample,
            targets=pseudo,
            logits=logits,
            weight_images=weak if hp.weight_view == "weak" else strong1,
            logs={
                **self.loss_logs(ce=per_sample.mean(), ctr=contrast, div=div),
                "negatives_kept": keep.float().mean(),
                # label-free diagnostics: how far the key model (which writes the bank) lags the
                # query model, and how often refinement overrules the query's own prediction
                "key_agreement": (logits_kw.argmax(1) == logits_w.argmax(1)).float().mean(),
                "pl_overrules": (pseudo != logits_w.argmax(1)).float().mean(),
            },
        )
