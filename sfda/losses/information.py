"""Information maximisation (SHOT): mean per-sample entropy minus the entropy of the batch-mean prediction.
On several processes the batch mean is that of the global batch (``distributed.global_batch_terms``)."""

from __future__ import annotations

import torch

from ..parallel import batch_mean


def entropy(p: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """H(p) = -sum_k p_k log(p_k + eps) along the last dimension (SHOT's epsilon)."""
    return -(p * torch.log(p + eps)).sum(dim=-1)


def im_loss(probs: torch.Tensor, eps: float = 1e-5, diversity: bool = True) -> torch.Tensor:
    """mean_i H(p_i) - H(mean_i p_i); without the diversity term just the mean entropy."""
    loss = entropy(probs, eps).mean()
    if diversity:
        loss = loss - entropy(batch_mean(probs), eps)
    return loss
