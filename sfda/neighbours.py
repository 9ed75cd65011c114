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
import typing
from typing import Literal, Optional, Tuple

import torch
import torch.nn.functional as F

from .errors import ConfigError
from .state import PerSampleState

KnnBackend = Literal["auto", "torch", "faiss"]
BACKENDS: Tuple[str, ...] = typing.get_args(KnnBackend)


@functools.cache
def _faiss():
    """The faiss module, or None if it is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def faiss_available() -> bool:
    return _faiss() is not None


def faiss_gpu_available() -> bool:
    fs = _faiss()
    return fs is not None and hasattr(fs, "StandardGpuResources") and torch.cuda.is_available()


@functools.cache
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
            raise ConfigError(
                "method.knn_backend is 'faiss' but faiss is not installed; "
                "pip install faiss-cpu (or faiss-gpu), or set method.knn_backend=auto"
            )
        return "faiss-gpu" if cuda and faiss_gpu_available() else "faiss"
    if not faiss_available():
        return "torch"
    if cuda:
        return "faiss-gpu" if faiss_gpu_available() else "torch"
    return "faiss"


def _search(queries: torch.Tensor, base: torch.Tensor, k: int, backend: str) -> Tuple[torch.Tensor, torch.Tensor]:
    if backend == "torch":
        return torch.topk(queries @ base.t(), k, dim=1, largest=True, sorted=True)
    fs = _faiss()
    if backend == "faiss-gpu" and queries.is_cuda:
        resources = _gpu_resources()  # imports faiss.contrib.torch_utils first: knn_gpu then takes CUDA tensors
        with torch.cuda.device(queries.device):
            sims, rows = fs.knn_gpu(
                resources, queries.contiguous(), base.contiguous(), k, metric=fs.METRIC_INNER_PRODUCT
            )
        return sims, rows.long()
    sims, rows = fs.knn(
        queries.detach().cpu().contiguous().numpy(),
        base.detach().cpu().contiguous().numpy(),
        k,
        metric=fs.METRIC_INNER_PRODUCT,
    )
    return torch.from_numpy(sims).to(queries.device), torch.from_numpy(rows).long().to(queries.device)


@torch.no_grad()
def knn(
    queries: torch.Tensor, base: torch.Tensor, k: int, *, exclude: Optional[torch.Tensor] = None, backend: str = "auto"
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` rows of ``base`` by inner product with each query: (similarities [B, k], indices [B, k]).

    ``exclude`` [B]: a row of ``base`` each query must not return (its own entry), or None.
    ``backend``: auto | torch | faiss (see the module docstring); a resolved 'faiss-gpu' is accepted too.
    """
    n = base.shape[0]
    need = k + (1 if exclude is not None else 0)
    if k < 1 or need > n:
        raise ConfigError(
            f"k-nearest-neighbour search for k={k} needs more than {need - 1} samples in the bank, "
            f"which has {n}; lower method.k / method.kk"
        )
    kind = backend if backend == "faiss-gpu" else resolve_backend(backend, queries.device)
    with torch.autocast(device_type=queries.device.type, enabled=False):
        queries, base = queries.float(), base.float()
        if exclude is None:
            return _search(queries, base, k, kind)
        if kind == "torch":
            sims = queries @ base.t()
            sims[torch.arange(queries.shape[0], device=queries.device), exclude.to(queries.device)] = -float("inf")
            return torch.topk(sims, k, dim=1, largest=True, sorted=True)
        sims, rows = _search(queries, base, k + 1, kind)
        drop = rows == exclude.to(rows.device).view(-1, 1)
        drop[~drop.any(dim=1), -1] = True  # the query's own row was not among the k+1: drop the last one
        keep = ~drop
        return sims[keep].view(-1, k), rows[keep].view(-1, k)


class MemoryBank(PerSampleState):
    """L2-normalised features [N, D] and predictions [N, K] of every target sample, by dataset index.

    The rows are per-sample state (module buffers): ``state_dict`` holds them, and loading a saved state
    restores them exactly (shapes included) into a fresh bank.
    """

    features: torch.Tensor  # buffers of PerSampleState, declared for type checkers
    scores: torch.Tensor

    def __init__(self, backend: str = "auto"):
        if backend not in BACKENDS:
            raise ConfigError(f"method.knn_backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
        super().__init__(features=((0,), torch.float32, 0.0), scores=((0,), torch.float32, 0.0))
        self.backend = backend

    @property
    def ready(self) -> bool:
        """Whether the bank has been filled (or loaded from a saved state)."""
        return len(self) > 0

    @torch.no_grad()
    def fill(self, features: torch.Tensor, scores: torch.Tensor) -> None:
        """Replace the whole bank (rows in dataset order), e.g. from the eval pass at epoch 0."""
        if features.shape[0] != scores.shape[0]:
            raise ValueError("features and scores must have one row per sample")
        self.assign("features", F.normalize(features.detach().float(), dim=1).clone())
        self.assign("scores", scores.detach().float().clone())

    @torch.no_grad()
    def update(self, indices: torch.Tensor, features: torch.Tensor, scores: torch.Tensor) -> None:
        """Overwrite the rows of ``indices`` with the batch's (normalised) features and predictions."""
        if not self.ready:
            raise RuntimeError("the memory bank is empty: fill() it before updating")
        rows = indices.to(self.features.device)
        self.features[rows] = F.normalize(features.detach().float(), dim=1).to(self.features.device)
        self.scores[rows] = scores.detach().float().to(self.scores.device)

    def neighbours(self, queries: torch.Tensor, k: int, exclude: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Indices [B, k] of the k bank rows most similar to ``queries`` (already normalised), best first."""
        return knn(queries, self.features, k, exclude=exclude, backend=self.backend)[1]
