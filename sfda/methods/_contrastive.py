"""Shared parts of the contrastive methods (AdaContrast, PLUE): multi-view batches, the momentum key model,
the key queue, the ring bank with nearest-neighbour soft voting, and the InfoNCE loss with masked negatives.

- **Views.** ``setup`` makes the training set return one weak and two strong views per sample
  (:mod:`sfda.data.views`); a batch's images are [N, 3, C, H, W] (weak, strong 1, strong 2).
- **Key model.** A momentum copy of the model (:mod:`sfda.models.momentum`), updated before the keys are
  computed, always in train mode (its BatchNorm running statistics come from its own forwards).
- **Key queue** (:class:`KeyQueue`): ``min(queue_size, N)`` L2-normalised keys with, per slot, the key's
  pseudo-label and the dataset index of its sample; initialised with random unit vectors, random labels and
  random indices; a ring buffer.
- **Ring bank** (:class:`RingBank`): features and softmax predictions written at a ring pointer (not by
  dataset index), searched by cosine similarity: :func:`soft_vote` averages the predictions of the K nearest
  rows (the sample's own older row may be one of them).
- **InfoNCE** (:func:`info_nce`): per query, -log softmax of the positive logit q.k/tau among the positive
  and the queue's keys q.Q_m/tau, negatives where ``keep`` is false removed.

All state (key model, queue, bank) is module state on the model's device and part of the method's saved
state, so a resumed run continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Literal, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..data.transforms import build_transform
from ..data.views import strong_recipe, strong_view, use_views
from ..datatypes import Inference
from ..errors import SfdaError
from ..models.momentum import momentum_copy, momentum_update
from ..neighbours import KnnBackend, knn
from ..params import param
from ..state import PerSampleState
from .base import Batch, Method, MethodParams


class KeyQueue(nn.Module):
    """A ring buffer of ``size`` keys [size, dim] with a pseudo-label and a dataset index per slot."""

    keys: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    ptr: torch.Tensor

    def __init__(self, size: int, dim: int, num_classes: int, num_samples: int):
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("labels", torch.randint(0, num_classes, (size,)))
        self.register_buffer("indices", torch.randint(0, max(num_samples, 1), (size,)))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> None:
        """Write the batch at the pointer, wrapping around; a batch longer than the queue keeps its last rows."""
        size = len(self)
        keys, labels, indices = keys[-size:], labels[-size:], indices[-size:]
        slots = (self.ptr + torch.arange(keys.shape[0], device=self.keys.device)) % size
        self.keys[slots] = keys.detach().to(self.keys.dtype)
        self.labels[slots] = labels.to(self.labels.device)
        self.indices[slots] = indices.to(self.indices.device)
        self.ptr.copy_((self.ptr + keys.shape[0]) % size)


class RingBank(PerSampleState):
    """Features (stored L2-normalised) and predictions written at a ring pointer; K-nearest soft voting."""

    features: torch.Tensor
    probs: torch.Tensor
    ptr: torch.Tensor

    def __init__(self, backend: str = "auto"):
        super().__init__(features=((0,), torch.float32, 0.0), probs=((0,), torch.float32, 0.0))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.backend = backend

    @property
    def ready(self) -> bool:
        return len(self) > 0

    @torch.no_grad()
    def fill(self, features: torch.Tensor, probs: torch.Tensor) -> None:
        """Replace the whole bank (the pointer goes back to row 0)."""
        self.assign("features", F.normalize(features.detach().float(), dim=1).clone())
        self.assign("probs", probs.detach().float().clone())
        self.ptr.zero_()

    @torch.no_grad()
    def write(self, features: torch.Tensor, probs: torch.Tensor) -> None:
        """Overwrite the next rows after the pointer with a batch (wrapping around)."""
        n = len(self)
        features, probs = features[-n:], probs[-n:]
        rows = (self.ptr.to(self.features.device) + torch.arange(features.shape[0], device=self.features.device)) % n
        self.features[rows] = F.normalize(features.detach().float(), dim=1)
        self.probs[rows] = probs.detach().float().to(self.probs.device)
        self.ptr.copy_((self.ptr + features.shape[0]) % n)

    @torch.no_grad()
    def vote(self, features: torch.Tensor, k: int, chunk: int = 256) -> torch.Tensor:
        """The mean prediction of the ``k`` rows most cosine-similar to each of ``features`` [B, D] -> [B, C]."""
        return torch.cat(
            [soft_vote(part, self.features, self.probs, k, self.backend) for part in features.split(chunk)]
        )


@torch.no_grad()
def soft_vote(
    features: torch.Tensor, bank_features: torch.Tensor, bank_probs: torch.Tensor, k: int, backend: str = "auto"
) -> torch.Tensor:
    """p_hat_i = (1/k) sum_{j in N_k(i)} P_j with N_k(i) the k bank rows of highest cosine similarity to f_i
    (``bank_features`` already L2-normalised)."""
    queries = F.normalize(features.detach().float(), dim=1).to(bank_features.device)
    _, rows = knn(queries, bank_features, k, backend=backend)
    return bank_probs[rows].mean(dim=1)


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, keep: torch.Tensor, tau: float) -> torch.Tensor:
    """Per-query InfoNCE [B]: -l_0 + log(exp(l_0) + sum_{m: keep[i, m]} exp(l_m)), l_0 = q.k/tau, l_m = q.Q_m/tau.

    ``q``, ``k`` [B, D] and ``queue`` [K, D] L2-normalised; ``keep`` [B, K] bool (false: negative removed). The
    queue is copied, so the caller may enqueue into it before the backward pass."""
    pos = (q * k).sum(dim=1, keepdim=True) / tau
    neg = (q @ queue.detach().clone().t().to(q.dtype)) / tau
    neg = neg.masked_fill(~keep, float("-inf"))
    logits = torch.cat([pos, neg], dim=1).float()
    return torch.logsumexp(logits, dim=1) - logits[:, 0]


def class_aware_mask(pseudo: torch.Tensor, queue_labels: torch.Tensor) -> torch.Tensor:
    """AdaContrast's negatives [B, K]: a queue key is kept unless its pseudo-label equals the query's."""
    return pseudo.view(-1, 1) != queue_labels.view(1, -1).to(pseudo.device)


def temporal_mask(query_rows: torch.Tensor, key_rows: torch.Tensor) -> torch.Tensor:
    """PLUE's negatives [B, K]: kept only if the query's and the key's label histories differ at every slot
    (slot by slot, same temporal position): ``query_rows`` [B, T], ``key_rows`` [K, T]."""
    return (query_rows.unsqueeze(1) != key_rows.unsqueeze(0)).all(dim=2)


def batch_diversity(logits: torch.Tensor, epsilon: float) -> torch.Tensor:
    """sum_c pbar_c log(pbar_c + eps), pbar the batch-mean softmax: lowest when the batch predicts uniformly."""
    pbar = torch.softmax(logits.float(), dim=1).mean(dim=0)
    return torch.sum(pbar * torch.log(pbar + epsilon))


class ContrastiveMethod(Method):
    """Base of AdaContrast and PLUE: views, key model, key queue; subclasses add their bank and losses."""

    @dataclass
    class Params(MethodParams):
        k: int = param(10, low=1, help="neighbours in the soft voting (cosine)")
        queue_size: int = param(16384, low=1, help="key queue slots (at most the target size N)")
        temperature: float = param(0.07, low=0.0, low_open=True, help="InfoNCE temperature tau")
        momentum: float = param(0.999, low=0.0, high=1.0, help="key-model EMA coefficient m")
        contrast_par: float = param(1.0, low=0.0, help="weight of the InfoNCE term")
        div_par: float = param(1.0, low=0.0, help="weight of the diversity term")
        epsilon: float = param(1e-8, low=0.0, help="in the diversity term's log")
        strong_views: Literal["auto", "mocov2", "affine"] = param(
            "auto", help="strong-view recipe (auto: by data.transform; sfda.data.views)"
        )
        weight_view: Literal["weak", "strong"] = param("weak", help="the view a weighter (NS) scores")
        knn_backend: KnnBackend = param("auto", help="auto: faiss if installed, else torch")
        freeze_classifier: bool = param(False, help="the references train the classifier")

    hparams: ContrastiveMethod.Params
    bank: RingBank  # made by the subclass's setup()

    def setup(self, train_set, device) -> None:
        super().setup(train_set, device)
        hp = self.hparams
        self.train_size = len(train_set)
        spec = build_transform(self.cfg)
        use_views(train_set, strong_view(strong_recipe(hp.strong_views, self.cfg.data), spec.test))
        self.key_model = momentum_copy(self.model)
        dim: int = self.model.netB.out_features  # type: ignore[assignment]  # contrastive vectors: bottleneck features
        self.queue = KeyQueue(min(hp.queue_size, self.train_size), dim, self.num_classes, self.train_size).to(device)

    def train_mode(self) -> None:
        super().train_mode()
        self.key_model.train()

    def fill_bank(self, inference: Inference, rows: Optional[int]) -> None:
        """Fill the refinement bank with ``rows`` random samples (None: all) of the eval pass, which must be the
        pass over the training set (the target domain)."""
        n = inference.features.shape[0]
        if n != self.train_size:
            raise SfdaError(
                f"the evaluation set has {n} images but the training set {self.train_size}: "
                f"{self.name} builds its bank from the target domain, so both must be it"
            )
        picked = torch.randperm(n, device=inference.features.device)[:rows]
        self.bank.fill(inference.features[picked], inference.probs[picked])

    def refined_label_accuracy(self, inference: Inference) -> Dict[str, float]:
        """The accuracy of the bank-refined pseudo-labels of the eval pass (a logged diagnostic)."""
        refined = self.bank.vote(inference.features, self.hparams.k).argmax(dim=1)
        return {"pl_accuracy": 100.0 * (refined == inference.labels).float().mean().item()}

    @staticmethod
    def views(batch: Batch) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(weak, strong 1, strong 2) of a multi-view batch [N, 3, C, H, W]."""
        if batch.images.dim() != 5 or batch.images.shape[1] != 3:
            raise RuntimeError(
                f"expected multi-view images [N, 3, C, H, W], got {tuple(batch.images.shape)}; "
                "the method's setup() makes the training set return them"
            )
        weak, strong1, strong2 = batch.images.unbind(dim=1)
        return weak, strong1, strong2

    @torch.no_grad()
    def keys(self, strong2: torch.Tensor) -> torch.Tensor:
        """Momentum update of the key model, then the normalised keys of the second strong view."""
        momentum_update(self.key_model, self.model, self.hparams.momentum)
        feats, _ = self.key_model(strong2, return_features=True)
        return F.normalize(feats.float(), dim=1)

    def loss_logs(self, **terms: torch.Tensor) -> dict:
        return {f"loss_{k}": v.detach() for k, v in terms.items()}
