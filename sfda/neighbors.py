"""Memory banks over the whole target set and exact k-nearest-neighbour search (cosine similarity).

Neighbourhood methods (NRC, AaD, ...) keep, for every target sample, its L2-normalised feature and its
softmax prediction. :class:`MemoryBank` holds both: it is filled once from an eval-mode pass over the
target set (the inference ``on_epoch_start`` receives at epoch 0) and updated with every training batch.

:func:`knn` returns the k most similar rows of a base matrix for each query (inner product of L2-normalised
rows = cosine similarity), most similar first, optionally leaving out one given row per query (the query's
own bank entry). Back-ends, chosen with ``backend``:

- ``torch``: ``queries @ base.T`` then ``topk``, on the tensors' device (always available);
- ``faiss``: exact (flat) inner-product search; on CUDA tensors with a GPU build of faiss, ``faiss.knn_gpu``
  runs on the GPU on the tensors themselves, otherwise ``faiss.knn`` runs on the CPU;
- ``auto`` (default): faiss when it is installed and can search where the tensors are (CPU, or CUDA with a
  GPU build); torch otherwise (no faiss, or CUDA tensors with a CPU-only faiss, where a GPU matmul is faster
  than copying the bank to the host).

Both back-ends are exact; they agree up to the order of exact ties and float rounding of near-ties.
Searches run in float32 with autocast disabled, so mixed-precision training does not round similarities.
"""
from __future__ import annotations

import functools
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .errors import ConfigError

BACKENDS = ("auto", "torch", "faiss")


@functools.lru_cache(maxsize=None)
def _faiss():
    """The faiss module, or None if it is not installed."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return None
    return faiss


def faiss_available() -> bool:
    return _faiss() is not None


def faiss_gpu_available() -> bool:
    fs = _faiss()
    return fs is not None and hasattr(fs, "StandardGpuResources") and torch.cuda.is_available()


@functools.lru_cache(maxsize=None)
def _gpu_resources():
    fs = _faiss()
    import faiss.contrib.torch_utils  # noqa: F401  (lets faiss.knn_gpu take torch CUDA tensors)
    return fs.StandardGpuResources()


def resolve_backend(name: str, device: torch.device | str) -> str:
    """'torch', 'faiss' (CPU) or 'faiss-gpu' for searches on ``device``."""
    if name not in BACKENDS:
        raise ConfigError(f"method.knn_backend must be one of {', '.join(BACKENDS)}, got '{name}'")
    cuda = torch.device(device).type == "cuda"
    if name == "torch":
        return "torch"
    if name == "faiss":
        if not faiss_available():
            raise ConfigError("method.knn_backend is 'faiss' but faiss is not installed; "
                              "pip install faiss-cpu (or faiss-gpu), or set method.knn_backend=auto")
        return "faiss-gpu" if cuda and faiss_gpu_available() else "faiss"
    if not faiss_available():
        return "torch"
    if cuda:
        return "faiss-gpu" if faiss_gpu_available() else "torch"
    return "faiss"


def _search(queries: torch.Tensor, base: torch.Tensor, k: int, backend: str) -> Tuple[torch.Tensor, torch.Tensor]:
    if backend == "torch":
        sims = queries @ base.t()
        return torch.topk(sims, k, dim=1, largest=True, sorted=True)
    fs = _faiss()
    if backend == "faiss-gpu" and queries.is_cuda:
        res = _gpu_resources()  # imports faiss.contrib.torch_utils first: knn_gpu then takes CUDA tensors
        with torch.cuda.device(queries.device):
            D, I = fs.knn_gpu(res, queries.contiguous(), base.contiguous(), k, metric=fs.METRIC_INNER_PRODUCT)
        return D, I.long()
    D, I = fs.knn(queries.detach().cpu().contiguous().numpy(), base.detach().cpu().contiguous().numpy(), k,
                  metric=fs.METRIC_INNER_PRODUCT)
    return torch.from_numpy(D).to(queries.device), torch.from_numpy(I).long().to(queries.device)


@torch.no_grad()
def knn(queries: torch.Tensor, base: torch.Tensor, k: int, *, exclude: Optional[torch.Tensor] = None,
        backend: str = "auto") -> Tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` rows of ``base`` by inner product with each query: (similarities [B, k], indices [B, k]).

    ``exclude`` [B]: a row of ``base`` each query must not return (its own entry), or None.
    ``backend``: auto | torch | faiss (see the module docstring); a resolved 'faiss-gpu' is accepted too.
    """
    n = base.shape[0]
    need = k + (1 if exclude is not None else 0)
    if k < 1 or need > n:
        raise ConfigError(f"k-nearest-neighbour search for k={k} needs more than {need - 1} samples in the bank, "
                          f"which has {n}; lower method.k / method.kk")
    kind = backend if backend == "faiss-gpu" else resolve_backend(backend, queries.device)
    with torch.autocast(device_type=queries.device.type, enabled=False):
        q, b = queries.float(), base.float()
        if exclude is None:
            return _search(q, b, k, kind)
        if kind == "torch":
            sims = q @ b.t()
            sims[torch.arange(q.shape[0], device=q.device), exclude.to(q.device)] = -float("inf")
            return torch.topk(sims, k, dim=1, largest=True, sorted=True)
        D, I = _search(q, b, k + 1, kind)
        drop = I == exclude.to(I.device).view(-1, 1)
        drop[~drop.any(dim=1), -1] = True  # the query's own row was not among the k+1: drop the last one
        keep = ~drop
        return D[keep].view(-1, k), I[keep].view(-1, k)


class MemoryBank:
    """L2-normalised features [N, D] and predictions [N, K] of every target sample, by dataset index."""

    def __init__(self, backend: str = "auto"):
        if backend not in BACKENDS:
            raise ConfigError(f"method.knn_backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
        self.backend = backend
        self.features: Optional[torch.Tensor] = None
        self.scores: Optional[torch.Tensor] = None

    @property
    def ready(self) -> bool:
        return self.features is not None

    def __len__(self) -> int:
        return 0 if self.features is None else self.features.shape[0]

    @torch.no_grad()
    def fill(self, features: torch.Tensor, scores: torch.Tensor) -> None:
        """Replace the whole bank (rows in dataset order), e.g. from the eval pass at epoch 0."""
        if features.shape[0] != scores.shape[0]:
            raise ValueError("features and scores must have one row per sample")
        self.features = F.normalize(features.detach().float(), dim=1).clone()
        self.scores = scores.detach().float().clone()

    @torch.no_grad()
    def update(self, indices: torch.Tensor, features: torch.Tensor, scores: torch.Tensor) -> None:
        """Overwrite the rows of ``indices`` with the batch's (normalised) features and predictions."""
        if not self.ready:
            raise RuntimeError("the memory bank is empty: fill() it before updating")
        idx = indices.to(self.features.device)
        self.features[idx] = F.normalize(features.detach().float(), dim=1).to(self.features.device)
        self.scores[idx] = scores.detach().float().to(self.scores.device)

    def neighbors(self, queries: torch.Tensor, k: int, exclude: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Indices [B, k] of the k bank rows most similar to ``queries`` (already normalised), best first."""
        return knn(queries, self.features, k, exclude=exclude, backend=self.backend)[1]

    def state_dict(self) -> dict:
        return {"features": self.features, "scores": self.scores}

    def load_state_dict(self, state: dict) -> None:
        self.features = state.get("features")
        self.scores = state.get("scores")
