"""TPDS (Tang et al., IJCV 2024): a nearest-neighbour trace to a confident sample and the mutual information
between a sample's prediction and its traced neighbour's.

Before every epoch, from the eval-mode pass over the target (test transform):

- the bank: every sample's backbone (netF) output F_j, the space the trace searches;
- confidence flags: a sample is *unconfident* when it is among the ``entropy_fraction`` (50 %) of the target
  with the largest prediction entropy AND not among the ``distance_fraction`` (60 %) closest to a soft class
  centroid (SHOT's cosine distance on the bottleneck features with a constant 1 appended, classes that win
  some argmax); every other sample is confident.

Per batch, the trace of sample b (cosine similarity of netF features, exact search): v_0 = the bank entry
nearest to the training-mode F_b (taken to be the sample itself and excluded); n_1 = the nearest entry other
than v_0; n_{t+1} = the entry nearest to the *banked* F_{n_t}, excluding n_t and every node visited before
(v_0, n_1, ..., n_{t-1}). The walk stops at the first confident node; ``trace_steps`` (70, the reference's
``LN_MEM``) bounds it as the reference does: nodes n_1 .. n_{trace_steps - 1} are examined and a walk that meets
no confident one falls back to n_1. The traced feature F_trace(b) is the banked one (a constant), passed through
the *current* netB and netC in training mode: q_b = softmax(netC(netB(F_trace(b)))).

Loss: IIC's mutual information between p (the batch's predictions) and q, minus the diversity term,

    J = sym(sum_b p_b q_b^T) / Z,   PMI_ij = log J_ij - log J_i. - log J_.j,   Z = sum of the entries
    L = -sum_ij J_ij PMI_ij - div_par H(mean_b p_b)  =  mean_b l_b - div_par H(pbar)
    l_b = -(B / Z) p_b^T PMI q_b                                           (per sample, weightable)

With the PMI table (and Z) held constant inside l_b, mean_b l_b has IIC's value and, with equal weights, IIC's
gradient (the PMI path contributes -d(sum J) = 0, J being normalised). A weighter (NS) multiplies l_b: sample b's
pull towards agreement with its traced neighbour, scored by the batch's PMI table. That is an sfda variant; the
paper has no per-sample term. The weighter's target is the argmax of q_b (the class the traced neighbour
currently predicts; ``weight_target: prediction``: the argmax of p_b).

The bank and the flags are rebuilt from every epoch-start pass, which a resumed run repeats, so they are no
resume state (a VisDA-C bank is 55k x 2048 floats: not written to ``state.pt`` every epoch).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Literal, Optional, Tuple

import torch
import torch.nn.functional as F

from .. import parallel
from ..clustering import shot_pseudo_labels
from ..datatypes import Inference
from ..errors import SfdaError
from ..params import param
from ..registry import METHODS
from ._neighbourhood import diversity
from .base import Batch, Method, MethodParams, StepInfo, StepOutput

MI_EPS = sys.float_info.epsilon  # IIC's floor for the joint's entries (2.2e-16)


@torch.no_grad()
def confidence_flags(
    features: torch.Tensor,
    probs: torch.Tensor,
    entropy_fraction: float = 0.5,
    distance_fraction: float = 0.6,
    epsilon: float = 1e-5,
) -> torch.Tensor:
    """[N] bool, False for the unconfident samples: among the int(N * entropy_fraction) largest entropies and not
    among the int(N * distance_fraction) smallest cosine distances to a soft centroid (bottleneck ``features``)."""
    n = probs.shape[0]
    entropy = -(probs * torch.log(probs + epsilon)).sum(dim=1)
    high_entropy = torch.zeros(n, dtype=torch.bool, device=probs.device)
    high_entropy[entropy.topk(int(n * entropy_fraction), largest=True).indices] = True
    nearest = shot_pseudo_labels(features, probs, threshold=0, rounds=1).distances.min(dim=1).values
    near_centroid = torch.zeros(n, dtype=torch.bool, device=probs.device)
    near_centroid[nearest.topk(int(n * distance_fraction), largest=False).indices] = True
    return ~(high_entropy & ~near_centroid)


def inverse_norms(bank: torch.Tensor) -> torch.Tensor:
    """1 / ||row|| (as ``F.normalize``: norms below 1e-12 count as 1e-12)."""
    return 1.0 / bank.float().norm(dim=1).clamp_min(1e-12)


@torch.no_grad()
def nearest_trace(
    queries: torch.Tensor,
    bank: torch.Tensor,
    confident: torch.Tensor,
    steps: int = 70,
    own: Optional[torch.Tensor] = None,
    inv_norms: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The trace of each query (module docstring): (node [B], hop [B]); node = the bank row of the first confident
    node among n_1 .. n_{steps-1} (hop: its step t, 1-based), or n_1 when there is none (hop 0).

    ``own``: exclude these rows at step 0 instead of each query's nearest entry (the reference excludes the
    nearest). Cosine similarity in float32 with autocast off; ``inv_norms``: the bank's, if already computed."""
    with torch.autocast(device_type=bank.device.type, enabled=False):
        bank = bank.float()
        inv = inverse_norms(bank) if inv_norms is None else inv_norms

        def similarities(unit_queries: torch.Tensor) -> torch.Tensor:
            return (unit_queries @ bank.t()) * inv

        sims = similarities(F.normalize(queries.float(), dim=1))
        start = sims.argmax(dim=1) if own is None else own.to(bank.device)
        sims.scatter_(1, start[:, None], float("-inf"))
        first = sims.argmax(dim=1)
        node, hop = first.clone(), torch.zeros_like(first)
        if steps < 2:  # no node examined: every walk falls back to n_1
            return node, hop
        found = confident[first]
        hop[found] = 1
        rows = torch.nonzero(~found).flatten()  # walks still going, their visited nodes and current node
        visited = torch.stack([start, first], dim=1)[rows]
        current = first[rows]
        for t in range(1, steps - 1):  # n_{t+1}, examined for t + 1 <= steps - 1
            if rows.numel() == 0:
                break
            sims = similarities(bank[current] * inv[current, None])
            sims.scatter_(1, visited, float("-inf"))  # n_t and everything before it
            nxt = sims.argmax(dim=1)
            found = confident[nxt]
            node[rows[found]], hop[rows[found]] = nxt[found], t + 1
            keep = ~found
            rows, current = rows[keep], nxt[keep]
            visited = torch.cat([visited, nxt[:, None]], dim=1)[keep]
        return node, hop


def mi_per_sample(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """l_b = -(B / Z) p_b^T PMI q_b with the batch's PMI table held constant (module docstring); mean_b l_b is
    IIC's loss -I(J) for the joint of p and q. On several processes the joint is the global batch's."""
    with torch.autocast(device_type=p.device.type, enabled=False):  # float32 under mixed precision too
        p, q = p.float(), q.float()
        joint = p.detach().t() @ q.detach()
        count = torch.full((1, joint.shape[1]), float(p.shape[0]), dtype=joint.dtype, device=joint.device)
        if parallel.global_batch_terms():
            joint, count = parallel.all_reduce_sum(torch.cat([joint, count])).split([joint.shape[0], 1])
        joint = (joint + joint.t()) / 2
        total = joint.sum()
        joint = joint / total
        marginal = torch.log(joint.sum(dim=1).clamp_min(MI_EPS))
        pmi = torch.log(joint.clamp_min(MI_EPS)) - marginal[:, None] - marginal[None, :]
        return -(count[0, 0] / total) * ((p @ pmi) * q).sum(dim=1)


@METHODS.register("tpds")
class TPDS(Method):
    """TPDS: a trace to a confident neighbour in netF space, mutual information between the two predictions."""

    label = "TPDS"
    inference_backbone = True
    # rebuilt from every epoch-start pass (which a resumed run repeats): not resume state
    NOT_STATE = Method.NOT_STATE + ("bank", "inv_norms", "confident")

    @dataclass
    class Params(MethodParams):
        div_par: float = param(
            0.5, low=0.0, help="weight of -H(mean p) (Office-Home 0.5, Office-31 and DomainNet-126 1.0, VisDA-C 0)"
        )
        trace_steps: int = param(
            70, low=1, help="the reference's LN_MEM: nodes n_1 .. n_(trace_steps-1) are examined, else n_1"
        )
        entropy_fraction: float = param(
            0.5, low=0.0, high=1.0, help="share of the target with the largest entropy that may be unconfident"
        )
        distance_fraction: float = param(
            0.6, low=0.0, high=1.0, help="share of the target closest to a centroid that is always confident"
        )
        self_exclusion: Literal["nearest", "index"] = param(
            "nearest", help="step 0 excludes the query's nearest bank entry (the reference) or its own row"
        )
        weight_target: Literal["trace", "prediction"] = param(
            "trace", help="what a weighter scores: argmax of the traced neighbour's prediction q, or of p"
        )
        freeze_classifier: bool = param(False, help="TPDS trains the classifier (at optim.classifier_lr_mult)")
        epsilon: float = param(1e-5, low=0.0, help="in the entropy and diversity logs")

    hparams: TPDS.Params

    def setup(self, train_set, device) -> None:
        super().setup(train_set, device)
        self.train_size = len(train_set)
        self.bank: Optional[torch.Tensor] = None
        self.inv_norms: Optional[torch.Tensor] = None
        self.confident: Optional[torch.Tensor] = None

    def on_epoch_start(self, epoch: int, inference: Inference) -> Dict[str, Any]:
        if inference.backbone_features is None:
            raise SfdaError(
                "TPDS needs the backbone (netF) outputs of the epoch-start pass (Inference.backbone_features)"
            )
        if inference.features.shape[0] != self.train_size:
            raise SfdaError(
                f"the evaluation set has {inference.features.shape[0]} images but the training set "
                f"{self.train_size}: TPDS's bank needs both to be the target domain"
            )
        hp = self.hparams
        self.bank = inference.backbone_features
        self.inv_norms = inverse_norms(self.bank)
        self.confident = confidence_flags(
            inference.features, inference.probs, hp.entropy_fraction, hp.distance_fraction, hp.epsilon
        )
        correct = inference.probs.argmax(dim=1) == inference.labels  # logged only
        return {
            "confident": 100.0 * self.confident.float().mean().item(),
            "confident_accuracy": 100.0 * correct[self.confident].float().mean().item(),
        }

    def training_step(self, batch: Batch, info: StepInfo) -> StepOutput:
        hp = self.hparams
        assert self.bank is not None and self.confident is not None, "on_epoch_start fills the bank first"
        captured: List[torch.Tensor] = []
        hook = self.model.netF.register_forward_hook(lambda _module, _inputs, out: captured.append(out))
        try:
            _, logits = self.model(batch.images, return_features=True)
        finally:
            hook.remove()
        own = batch.indices if hp.self_exclusion == "index" else None
        node, hop = nearest_trace(
            captured[-1].detach().flatten(1), self.bank, self.confident, hp.trace_steps, own, self.inv_norms
        )
        trace_logits = self.model.netC(self.model.netB(self.bank[node]))
        probs = torch.softmax(logits.float(), dim=1)
        trace_probs = torch.softmax(trace_logits.float(), dim=1)
        per_sample = mi_per_sample(probs, trace_probs)
        div = diversity(probs, hp.epsilon) if hp.div_par > 0 else torch.zeros((), device=probs.device)
        target_probs = trace_probs if hp.weight_target == "trace" else probs
        found = hop > 0
        return StepOutput(
            reduced_loss=hp.div_par * div,
            per_sample=per_sample,
            targets=target_probs.detach().argmax(dim=1),
            logits=logits,
            logs={
                "loss_mi": per_sample.detach().mean(),
                "loss_div": div.detach(),
                "trace_fallback": (~found).float().mean(),
                "trace_hops": hop.float().sum() / found.float().sum().clamp_min(1.0),  # of the walks that found one
                "trace_agree": (probs.detach().argmax(dim=1) == trace_probs.detach().argmax(dim=1)).float().mean(),
            },
        )
