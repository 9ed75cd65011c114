"""Shared parts of the memory-bank methods (NRC, AaD): the bank filled from the epoch-0 eval pass and
updated with every training batch, an explicit (off by default) K switch, the classifier policy, and the
resume state (the banks are part of ``state_dict``)."""
from __future__ import annotations

import torch

from ..datatypes import Inference
from ..errors import ConfigError, SfdaError
from ..neighbors import BACKENDS, MemoryBank
from .base import Batch, Method, StepInfo, freeze

NEIGHBOUR_DEFAULTS = {
    "knn_backend": "auto",       # auto (faiss if installed; GPU search on CUDA with faiss-gpu) | torch | faiss
    "switch_progress": 0.5,      # with switch_k / switch_kk > 0: fraction of the iterations after which they apply
    "freeze_classifier": False,  # NRC and AaD train the classifier (at optim.classifier_lr_mult)
    "epsilon": 1e-5,
}


def diversity(probs: torch.Tensor, epsilon: float) -> torch.Tensor:
    """sum_c pbar_c log(pbar_c + eps) with pbar the batch-mean prediction: lowest when pbar is uniform."""
    pbar = probs.mean(dim=0)
    return torch.sum(pbar * torch.log(pbar + epsilon))


class NeighbourhoodMethod(Method):
    """Base of NRC and AaD: bank set-up, K schedule, classifier policy, state."""

    k_keys = ("k",)  # neighbour counts the method uses (each may have a switch_<key>)

    def setup(self, train_set, device):
        if self.knn_backend not in BACKENDS:
            raise ConfigError(f"method.knn_backend must be one of {', '.join(BACKENDS)}, got '{self.knn_backend}'")
        for key in self.k_keys:
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"method.{key} must be at least 1, got {getattr(self, key)}")
            if int(getattr(self, f"switch_{key}")) < 0:
                raise ConfigError(f"method.switch_{key} must be 0 (no switch) or a positive count")
        if not 0.0 <= self.switch_progress <= 1.0:
            raise ConfigError(f"method.switch_progress must be in [0, 1], got {self.switch_progress}")
        if self.freeze_classifier:
            freeze(self.model.netC)
        self.train_size = len(train_set)
        self.bank = MemoryBank(self.knn_backend)

    def train_mode(self):
        self.model.train()
        if self.freeze_classifier:
            self.model.netC.eval()

    def on_epoch_start(self, epoch: int, inference: Inference):
        # The bank is filled once, from the eval pass before epoch 0; afterwards only the batches update it.
        # A resumed run has its bank back from the saved state, so this pass leaves it alone.
        if not self.bank.ready:
            if inference.features.shape[0] != self.train_size:
                raise SfdaError(f"the evaluation set has {inference.features.shape[0]} images but the training set "
                                f"{self.train_size}: memory-bank methods need both to be the target domain")
            self.bank.fill(inference.features, inference.probs)
        return {}

    def current_k(self, info: StepInfo, key: str = "k") -> int:
        """``key``'s value, or ``switch_<key>`` once training is past ``switch_progress`` if that is set (> 0)."""
        late = int(getattr(self, f"switch_{key}"))
        if late > 0 and info.iteration > self.switch_progress * info.total_iterations:
            return late
        return int(getattr(self, key))

    def forward_and_update(self, batch: Batch):
        """Forward the batch, write its normalised features and predictions into the bank (before the search,
        as the originals do), and return (features, logits, float32 probabilities, normalised features)."""
        feats, logits = self.model(batch.images, return_features=True)
        probs = torch.softmax(logits.float(), dim=1)
        self.bank.update(batch.indices, feats, probs)
        queries = self.bank.features[batch.indices.to(self.bank.features.device)]
        return feats, logits, probs, queries
