"""The momentum ("key") copy of a model (MoCo, AdaContrast, PLUE): a second copy that never receives
gradients and follows the trained model by an exponential moving average of the parameters,

    theta' <- m theta' + (1 - m) theta        (parameters only; BatchNorm running statistics are not copied:
                                               the copy's own train-mode forwards update them)
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def momentum_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every parameter frozen (``requires_grad`` off), in the same mode."""
    key = copy.deepcopy(model)
    for p in key.parameters():
        p.requires_grad_(False)
    return key


@torch.no_grad()
def momentum_update(key: nn.Module, query: nn.Module, m: float) -> None:
    """theta' <- m theta' + (1 - m) theta over the parameters of two models of the same architecture."""
    key_params = dict(key.named_parameters())
    for name, q in query.named_parameters():
        k = key_params[name]
        k.mul_(m).add_(q.detach().to(k.dtype), alpha=1.0 - m)
