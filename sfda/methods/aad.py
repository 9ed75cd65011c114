"""AaD (Yang et al., NeurIPS 2022): attracting and dispersing.

Memory banks as in NRC (L2-normalised features and predictions S of every target sample, filled from the
eval pass at epoch 0 and overwritten with each training batch before the search). For a batch of B samples
with predictions p_i and C_i the K nearest bank entries of sample i (itself excluded):

    a_i = - sum_{j in C_i} p_i . S_j                                   attraction (per sample, weightable)
    d   = mean_i sum_{m != i in the batch} p_i . p_m                  dispersion (batch level, both sides
                                                                       carry gradient, as in the original)
    L   = mean_i w_i a_i + lambda d,   lambda = alpha (1 + 10 t/T)^-beta

``beta: 0`` keeps lambda = alpha constant (the Office-Home setting: alpha 1); VisDA-C uses beta 5. The
attraction is the dot product itself: the original's ``F.kl_div(p, S)`` with probabilities as input equals
sum S (log S - p), whose gradient is that of -p . S.

NS and other weighters multiply a_i; their target for sample i is the argmax of p_i (the sample's current
prediction, detached). Differences from the original code: K stays fixed unless ``switch_k`` is set (the
Office-Home code silently sets K=2 after half the iterations); the final epoch is reported (the original
keeps the checkpoint with the best target-label accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..parallel import all_reduce_sum, global_batch_terms
from ..params import param
from ..registry import METHODS
from ._neighbourhood import NeighbourhoodMethod
from .base import Batch, StepInfo, StepOutput


def attraction(probs: torch.Tensor, scores_near: torch.Tensor) -> torch.Tensor:
    """a_i = -sum_j p_i . S_j; probs [B, C], scores_near [B, K, C] -> [B]."""
    return -torch.einsum("bkc,bc->b", scores_near, probs)


def dispersion(probs: torch.Tensor) -> torch.Tensor:
    """mean_i sum_{m != i} p_i . p_m over the batch (gradient through both factors). On several processes m runs
    over the global batch: p_i . (sum of every rank's p_m) - p_i . p_i, the sum reduced with autograd."""
    if global_batch_terms():
        total = all_reduce_sum(probs.sum(dim=0))
        return (probs @ total - (probs * probs).sum(dim=1)).mean()
    gram = probs @ probs.t()
    return (gram.sum(dim=1) - gram.diagonal()).mean()


@METHODS.register("aad")
class AaD(NeighbourhoodMethod):
    """AaD: attract each prediction to its K bank neighbours' predictions, disperse it from the rest of the batch."""

    label = "AaD"

    @dataclass
    class Params(NeighbourhoodMethod.Params):
        alpha: float = param(1.0, help="weight of the dispersion term")
        beta: float = param(0.0, help="lambda = alpha (1 + 10 t/T)^-beta (0: constant; VisDA-C: 5)")

    hparams: AaD.Params

    def dispersion_weight(self, info: StepInfo) -> float:
        return self.hparams.alpha * (1.0 + 10.0 * info.progress) ** (-self.hparams.beta)

    def training_step(self, batch: Batch, info: StepInfo) -> StepOutput:
        _, logits, probs, queries = self.forward_and_update(batch)
        near = self.bank.neighbours(queries, self.current_k(info), exclude=batch.indices)
        per_sample = attraction(probs, self.bank.scores[near])
        disp = dispersion(probs)
        return StepOutput(
            reduced_loss=self.dispersion_weight(info) * disp,
            per_sample=per_sample,
            targets=probs.detach().argmax(dim=1),
            logits=logits,
            logs={"loss_attract": per_sample.detach().mean(), "loss_disperse": disp.detach()},
        )
