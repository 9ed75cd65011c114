"""Shared parts of the memory-bank methods (NRC, AaD): the parameters they share, the bank filled from the
epoch-0 eval pass and updated with every training batch, and an explicit (off by default) K switch. The bank
is per-sample state (:class:`~sfda.neighbours.MemoryBank`), so it is part of the resume state."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..datatypes import Inference
from ..errors import SfdaError
from ..neighbours import KnnBackend, MemoryBank
from ..parallel import batch_mean, gather_rows
from ..params import param
from .base import Batch, Method, MethodParams, StepInfo


def diversity(probs: torch.Tensor, epsilon: float) -> torch.Tensor:
    """sum_c pbar_c log(pbar_c + eps) with pbar the batch-mean prediction (of the global batch on several
    processes): lowest when pbar is uniform."""
    pbar = batch_mean(probs)
    return torch.sum(pbar * torch.log(pbar + epsilon))


class NeighbourhoodMethod(Method):
    """Base of NRC and AaD: bank set-up, K schedule."""

    @dataclass
    class Params(MethodParams):
        k: int = param(3, low=1, help="nearest neighbours (Office-Home script: 3; VisDA-C: 5)")
        switch_k: int = param(
            0, low=0, help="0: K fixed; > 0: K from switch_progress on (the Office-Home code's hidden switch)"
        )
        switch_progress: float = param(
            0.5, low=0.0, high=1.0, help="fraction of the iterations after which switch_* apply"
        )
        knn_backend: KnnBackend = param(
            "auto", help="auto: faiss if installed (GPU search on CUDA with faiss-gpu), else torch"
        )
        freeze_classifier: bool = param(False, help="NRC and AaD train the classifier (at optim.classifier_lr_mult)")
        epsilon: float = param(1e-5, low=0.0, help="in the diversity term's log")

    hparams: NeighbourhoodMethod.Params

    def setup(self, train_set, device) -> None:
        super().setup(train_set, device)
        self.train_size = len(train_set)
        self.bank = MemoryBank(self.hparams.knn_backend)

    def on_epoch_start(self, epoch: int, inference: Inference):
        # The bank is filled once, from the eval pass before epoch 0; afterwards only the batches update it.
        # A resumed run has its bank back from the saved state, so this pass leaves it alone.
        if not self.bank.ready:
            if inference.features.shape[0] != self.train_size:
                raise SfdaError(
                    f"the evaluation set has {inference.features.shape[0]} images but the training set "
                    f"{self.train_size}: memory-bank methods need both to be the target domain"
                )
            self.bank.fill(inference.features, inference.probs)
        return {}

    def current_k(self, info: StepInfo, key: str = "k") -> int:
        """``key``'s value, or ``switch_<key>`` once training is past ``switch_progress`` if that is set (> 0)."""
        late = getattr(self.hparams, f"switch_{key}")
        if late > 0 and info.iteration > self.hparams.switch_progress * info.total_iterations:
            return late
        return getattr(self.hparams, key)

    def forward_and_update(self, batch: Batch):
        """Forward the batch, write its normalised features and predictions into the bank (before the search,
        as the originals do; on several processes every rank's batch, so the banks stay identical), and return
        (features, logits, float32 probabilities, normalised features)."""
        feats, logits = self.model(batch.images, return_features=True)
        probs = torch.softmax(logits.float(), dim=1)
        self.bank.update(*gather_rows(batch.indices, feats.detach(), probs.detach()))
        queries = self.bank.features[batch.indices.to(self.bank.features.device)]
        return feats, logits, probs, queries
