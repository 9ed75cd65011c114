"""Collectives for runs on several processes (``torchrun``; see docs/distributed.md). Depends only on torch, so
methods, losses and weighters may use it; the process group itself is set up by :mod:`sfda.engine.distributed`.

Without a process group (a plain ``sfda`` run) and with one process every function here is the identity on
its input, computed exactly as one process computes it, so a run without torchrun is unchanged.

- rank helpers: :func:`world_size`, :func:`rank`, :func:`is_main`, :func:`rank_seed`;
- batch-level terms over the *global* batch (``distributed.global_batch_terms``): :func:`batch_mean`,
  :func:`all_reduce_sum` (autograd: the gradient reaches every rank's samples);
- without autograd: :func:`gather_rows` (one step's rows of every rank, rank order; equal sizes),
  :func:`gather_varlen` (any sizes), :func:`broadcast_` (rank 0's values, in place).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, List, Sequence, Tuple

import torch
import torch.distributed as dist

_GLOBAL_BATCH_TERMS = True  # set from the config by the trainer (distributed.global_batch_terms)


def active() -> bool:
    """Whether a process group is up (a torchrun run, any world size)."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Rank 0, or a run without torchrun: the process that writes files, logs and progress bars."""
    return rank() == 0


def rank_seed(seed: int) -> int:
    """The seed of this rank's random streams (augmentation, NS groups, mixup): ``seed`` on rank 0 (a
    one-process run is unchanged), a different one on every other rank."""
    r = rank()
    return seed if r == 0 else (int(seed) * 1000003 + 7919 * r + 0x9E3779B9) & 0x7FFFFFFF


def set_global_batch_terms(flag: bool) -> None:
    global _GLOBAL_BATCH_TERMS
    _GLOBAL_BATCH_TERMS = bool(flag)


def global_batch_terms() -> bool:
    """Whether batch-level loss terms see the global batch (several processes and the setting on)."""
    return _GLOBAL_BATCH_TERMS and world_size() > 1


# -- with autograd ------------------------------------------------------------------------------------------
class _AllReduceSum(torch.autograd.Function):
    """y = sum over ranks of x. Every rank's loss depends on y, so the gradient of x is the sum over ranks of
    the gradients of y: the backward pass is an all-reduce too."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = x.detach().clone().contiguous()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.detach().clone().contiguous()
        dist.all_reduce(grad)
        return grad


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over the ranks, differentiable (the identity with one process)."""
    return _AllReduceSum.apply(x) if world_size() > 1 else x


def batch_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over dimension 0 of the batch: the global batch (every rank's samples, with autograd) when
    ``global_batch_terms()``, else this process's ``x.mean(dim=0)``.

    Each rank's loss holds the same global term; DDP averages the ranks' gradients and the all-reduce's
    backward sums them, so the gradient is exactly that of one process holding the whole batch.
    """
    if not global_batch_terms():
        return x.mean(dim=0)
    count = torch.full((1,) + tuple(x.shape[1:]), float(x.shape[0]), dtype=x.dtype, device=x.device)
    both = all_reduce_sum(torch.cat([x.sum(dim=0, keepdim=True), count]))
    return both[0] / both[1]


# -- without autograd ---------------------------------------------------------------------------------------
@torch.no_grad()
def gather_rows(*tensors: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Every rank's rows of each tensor, concatenated in rank order (the inputs themselves with one process).
    All ranks must pass tensors of the same shapes (one training step: equal per-rank batches)."""
    if world_size() <= 1:
        return tensors
    out = []
    for t in tensors:
        t = t.detach().contiguous()
        view = t.view(torch.uint8) if t.dtype == torch.bool else t
        parts = [torch.empty_like(view) for _ in range(world_size())]
        dist.all_gather(parts, view)
        joined = torch.cat(parts)
        out.append(joined.view(torch.bool) if t.dtype == torch.bool else joined)
    return tuple(out)


@torch.no_grad()
def gather_varlen(*tensors: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Like :func:`gather_rows` for per-rank row counts that may differ (the same count across the tensors
    of one rank; trailing dimensions equal on every rank)."""
    if world_size() <= 1:
        return tensors
    n = tensors[0].shape[0]
    device = tensors[0].device
    counts = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(world_size())]
    dist.all_gather(counts, torch.tensor([n], dtype=torch.long, device=device))
    sizes = [int(c.item()) for c in counts]
    top = max(sizes)
    out = []
    for t in tensors:
        t = t.detach()
        view = t.view(torch.uint8) if t.dtype == torch.bool else t
        padded = torch.zeros((top,) + tuple(view.shape[1:]), dtype=view.dtype, device=view.device)
        padded[:n] = view
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        joined = torch.cat([p[:s] for p, s in zip(parts, sizes)])
        out.append(joined.view(torch.bool) if t.dtype == torch.bool else joined)
    return tuple(out)


@torch.no_grad()
def broadcast_(tensors: Sequence[torch.Tensor]) -> None:
    """Overwrite each tensor with rank 0's values, in place (same shapes on every rank)."""
    if world_size() <= 1:
        return
    for t in tensors:
        if t.numel() == 0:
            continue
        buf = t if t.is_contiguous() else t.contiguous()
        view = buf.view(torch.uint8) if buf.dtype == torch.bool else buf
        dist.broadcast(view, src=0)
        if buf is not t:
            t.copy_(buf)


@torch.no_grad()
def average_(tensors: Sequence[torch.Tensor]) -> None:
    """Replace each floating-point tensor by its mean over the ranks, in place (others are left alone)."""
    if world_size() <= 1:
        return
    floats: List[torch.Tensor] = [t for t in tensors if t.is_floating_point() and t.numel() > 0]
    for t in floats:
        buf = t.detach().clone().contiguous()
        dist.all_reduce(buf)
        t.copy_(buf / world_size())


def barrier() -> None:
    """Wait for every rank (an all-reduce of a CPU tensor: gloo, whatever the run's device, so that no GPU is
    touched before each rank has chosen its own)."""
    if world_size() > 1:
        dist.all_reduce(torch.zeros(1))


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (a download, a data preparation), the other ranks after it."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()
