"""LOW: learning optimal sample weights (Santiago et al., Pattern Recognition 2021), per sample.

Per mini-batch the reference solves the QP

    min_w  lambda * sum_i w_i^2 - sum_i (g_i^2 + lambda) w_i   s.t.  w_i >= 0,  sum_i w_i = N

(cvxopt, on the CPU) where g_i is the norm of the gradient of sample i's CE with respect to its logits,
and trains on mean_i(w_i * CE_i) with the weights as constants. The QP's solution is the Euclidean
projection of (g^2 + lambda) / (2 lambda) onto {w >= 0, sum w = N}; when no weight hits 0 it is
w_i = 1 + (g_i^2 - mean_j g_j^2) / (2 lambda). This module computes it in closed form, on the loss's
device, with g_i = ||p_i - e_{y_i}||_2 (CE's logit gradient, closed form, from detached logits).

These weights are a batch-level term: they depend on the whole batch and are recomputed on every call.
``grad_scale``: ``batch`` (the reference HEAD: g of the batch-mean loss, i.e. divided by N; with
lambda = 0.1 the weights are then within about 1e-3 of 1) or ``sample`` (the older version, per-sample g,
used with lambda = 1; substantial reweighting). External sample weights (NS, ...) multiply the returned
w_i * CE_i; they do not enter g_i.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn.functional as F

from ..params import param
from ..registry import LOSSES
from .base import Loss, LossParams
from .functional import as_float, project_to_scaled_simplex


def low_weights(logits: torch.Tensor, targets: torch.Tensor, lamb: float, grad_scale: str = "batch") -> torch.Tensor:
    """The QP's optimal weights for a batch (detached, float32, sum N)."""
    with torch.no_grad():
        z = as_float(logits).detach()
        n = z.shape[0]
        p = torch.softmax(z, dim=1)
        g = (p - F.one_hot(targets.long(), z.shape[1]).to(p.dtype)).norm(dim=1)
        if grad_scale == "batch":
            g = g / n
        v = (g.pow(2) + lamb) / (2.0 * lamb)
        return project_to_scaled_simplex(v, float(n))


@LOSSES.register("low")
class LOWLoss(Loss):
    """LOW (Santiago et al., 2021): w_i CE_i, w solved per batch in closed form (lambda 0.1).

    lambda = 0.1 with ``grad_scale: batch`` (reference HEAD) or lambda = 1 with ``grad_scale: sample`` (older
    reference version)."""

    @dataclass
    class Params(LossParams):
        lamb: float = param(0.1, low=0.0, low_open=True, help="the QP's lambda (large: weights near 1)")
        grad_scale: Literal["batch", "sample"] = param("batch", help="g of the batch-mean loss or per sample")

    hparams: Params

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        z = as_float(logits)
        weights = low_weights(z, targets, self.hparams.lamb, self.hparams.grad_scale)
        return weights * F.cross_entropy(z, targets.long(), reduction="none")
