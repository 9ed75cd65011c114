"""CoWA-JMDS (Lee et al., ICML 2022): GMM pseudo-labels, JMDS confidence and weight mixup.

Every epoch, from the eval pass ``on_epoch_start`` receives (features f_n L2-normalised, predictions p_n):

1. GMM in feature space. Means from the predictions (mu_k = sum_n p_nk f_n / sum_n p_nk, pi_k = sum_n p_nk);
   covariances around each mean with uniform responsibilities, plus ``epsilon`` I; posteriors gamma. Then
   ``em_rounds`` (1) EM rounds: pi, mu, Sigma from gamma, new posteriors. Pseudo-label y_n = argmax gamma_n.
2. JMDS_n = LPG_n * PPL_n: LPG = gap between the two largest GMM log-posteriors, divided by its maximum over
   the target set; PPL = p_n[y_n], the model's probability of the GMM label.

Training (per batch): weight mixup with lambda_i ~ Beta(alpha, alpha) per sample and a random partner pi(i):

    x~_i = lambda_i x_i + (1 - lambda_i) x_pi(i),  y~_i likewise from one-hot labels,  c~_i likewise from c
    l_i  = c~_i * CE(f(x~_i), y~_i),    L = mean_i l_i

with c = JMDS (``coeff: jmds``) or 1 (``coeff: none``). ``alpha: 0`` switches mixup off (l_i = c_i CE).

Weighters. The trainer's weighter (NS, ...) scores the *real* images of the batch with their pseudo-labels
(``StepOutput.weight_images``/``targets``), and its weight w_j is mixed like c: the per-sample term handed to
the trainer is indexed by real samples,

    per_sample_j = lambda_j l_j + sum_{i: pi(i) = j} (1 - lambda_i) l_i,

so that mean_j w_j per_sample_j = mean_i (lambda_i w_i + (1 - lambda_i) w_pi(i)) l_i (weight mixup of w), and
with w = 1 it is exactly CoWA's loss. ``coeff: none`` + ``weighting: ns`` puts NS in place of JMDS;
``coeff: jmds`` + ``weighting: ns`` multiplies the two (each mixed).

Choices: the GMM runs in float64 (the original: float32, retrying Cholesky with 100x the jitter; here the
jitter grows by 100x up to three times); classes whose GMM mass vanishes are dropped from the mixture
instead of producing NaN means; CE uses log_softmax (the original: log(softmax + 1e-6)). The classifier is
trained, at optim.classifier_lr_mult (0.1 in the original). The original's warm-up option (default off) is
not carried over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn.functional as F

from ..datatypes import Inference
from ..errors import SfdaError
from ..params import param
from ..registry import METHODS
from .base import Batch, Method, MethodParams, StepInfo, StepOutput

Coefficient = Literal["jmds", "lpg", "ppl", "none"]


@dataclass
class GMMLabels:
    labels: torch.Tensor  # [N] argmax of the posteriors
    log_posterior: torch.Tensor  # [N, K] (-inf for classes dropped from the mixture)
    lpg: torch.Tensor  # [N] log-probability gap, normalised by its maximum
    ppl: torch.Tensor  # [N] model probability of the GMM label

    def coefficient(self, kind: str) -> torch.Tensor:
        if kind == "jmds":
            return self.lpg * self.ppl
        if kind == "lpg":
            return self.lpg
        if kind == "ppl":
            return self.ppl
        return torch.ones_like(self.lpg)


def _log_gaussians(
    points: torch.Tensor, resp: torch.Tensor, pi: torch.Tensor, mu: torch.Tensor, epsilon: float
) -> torch.Tensor:
    """log pi_k + log N(f_n | mu_k, Sigma_k) [N, K] for the points f [N, D]; Sigma_k = sum_n resp_nk (f_n - mu_k)
    (f_n - mu_k)^T / sum_n resp_nk + epsilon I. Classes with no mass (pi_k = 0) get -inf."""
    N, D = points.shape
    K = mu.shape[0]
    out = torch.full((N, K), -math.inf, dtype=points.dtype, device=points.device)
    eye = torch.eye(D, dtype=points.dtype, device=points.device)
    for k in range(K):
        if not pi[k] > 0:
            continue
        diff = points - mu[k]
        resp_k = resp[:, k : k + 1]
        cov = diff.t() @ (diff * resp_k) / resp_k.sum() + epsilon * eye
        jitter = epsilon
        chol, info = torch.linalg.cholesky_ex(cov)
        for _ in range(3):
            if int(info) == 0:
                break
            jitter *= 100.0
            chol, info = torch.linalg.cholesky_ex(cov + jitter * eye)
        if int(info) != 0:
            continue  # a degenerate class: leave it out of the mixture
        whitened = torch.linalg.solve_triangular(chol, diff.t(), upper=False)  # [D, N]
        maha = (whitened * whitened).sum(dim=0)
        logdet = 2.0 * torch.log(torch.diagonal(chol)).sum()
        out[:, k] = -0.5 * (D * math.log(2 * math.pi) + logdet + maha) + torch.log(pi[k])
    return out


@torch.no_grad()
def gmm_pseudo_labels(
    features: torch.Tensor, probs: torch.Tensor, *, epsilon: float = 1e-6, em_rounds: int = 1, normalize: bool = True
) -> GMMLabels:
    """CoWA's GMM pseudo-labels and JMDS factors from target features [N, D] and predictions [N, K]."""
    points = features.double()
    if normalize:
        points = F.normalize(points, dim=1)
    predictions = probs.double()
    N, K = predictions.shape

    def means(resp):
        pi = resp.sum(dim=0)
        mu = (resp.t() @ points) / pi.clamp_min(1e-300).unsqueeze(1)
        return pi, mu

    pi, mu = means(predictions)
    log_joint = _log_gaussians(points, torch.full_like(predictions, 1.0 / K), pi, mu, epsilon)
    for _ in range(em_rounds):
        log_post = log_joint - torch.logsumexp(log_joint, dim=1, keepdim=True)
        gamma = log_post.exp()
        pi, mu = means(gamma)
        log_joint = _log_gaussians(points, gamma, pi, mu, epsilon)
    log_post = log_joint - torch.logsumexp(log_joint, dim=1, keepdim=True)
    labels = log_post.argmax(dim=1)
    top = log_post.topk(min(2, K), dim=1).values
    gap = top[:, 0] - top[:, 1] if K > 1 else torch.zeros(N, dtype=points.dtype, device=points.device)
    finite = torch.isfinite(gap)
    top_gap = gap[finite].max() if finite.any() else torch.tensor(1.0, dtype=points.dtype, device=points.device)
    gap = torch.where(finite, gap, top_gap)  # only one class left in the mixture: the largest gap
    lpg = gap / top_gap.clamp_min(1e-12) if top_gap > 0 else torch.ones_like(gap)
    ppl = predictions.gather(1, labels.view(-1, 1)).squeeze(1)
    return GMMLabels(labels, log_post.float(), lpg.float(), ppl.float())


def mixup_per_sample(
    logits: torch.Tensor,
    targets: torch.Tensor,
    coeff: torch.Tensor,
    lam: torch.Tensor,
    perm: torch.Tensor,
    num_classes: int,
):
    """Weight-mixup loss of mixed images (``logits`` of lam x + (1 - lam) x[perm]) attributed to the real samples.

    Returns (per_sample [B], mixed [B]): mixed_i = c~_i CE(logits_i, y~_i) and per_sample_j = lam_j mixed_j
    + sum_{i: perm(i)=j} (1 - lam_i) mixed_i, so per_sample.mean() == mixed.mean().
    """
    onehot = F.one_hot(targets, num_classes).float()
    y_mix = lam.view(-1, 1) * onehot + (1 - lam.view(-1, 1)) * onehot[perm]
    c_mix = lam * coeff + (1 - lam) * coeff[perm]
    mixed = c_mix * -(y_mix * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
    per_sample = (lam * mixed).index_add(0, perm, (1 - lam) * mixed)
    return per_sample, mixed


@METHODS.register("cowa")
class CoWA(Method):
    """CoWA-JMDS: GMM pseudo-labels refreshed every epoch, JMDS confidence, weight mixup."""

    label = "CoWA"

    @dataclass
    class Params(MethodParams):
        coeff: Coefficient = param(
            "jmds", help="per-sample confidence: jmds (LPG x PPL), lpg, ppl or none (1: use a weighter instead)"
        )
        alpha: float = param(0.2, low=0.0, help="mixup Beta(alpha, alpha) (Office-Home script 0.2; 0: no mixup)")
        epsilon: float = param(1e-6, low=0.0, help="covariance jitter")
        em_rounds: int = param(1, low=0, help="EM rounds after the initial estimate")
        cls_par: float = param(1.0, help="weight of the mixup loss")
        freeze_classifier: bool = param(False, help="the original trains the classifier (optim.classifier_lr_mult 0.1)")

    hparams: CoWA.Params

    def setup(self, train_set, device) -> None:
        super().setup(train_set, device)
        self.train_size = len(train_set)
        self.pseudo: Optional[torch.Tensor] = None  # [N] GMM pseudo-labels
        self.confidence: Optional[torch.Tensor] = None  # [N] the per-sample coefficient (JMDS by default)

    def on_epoch_start(self, epoch: int, inference: Inference):
        if inference.features.shape[0] != self.train_size:
            raise SfdaError(
                f"the evaluation set has {inference.features.shape[0]} images but the training set "
                f"{self.train_size}: CoWA's pseudo-labels need both to be the same target images"
            )
        gmm = gmm_pseudo_labels(
            inference.features, inference.probs, epsilon=self.hparams.epsilon, em_rounds=self.hparams.em_rounds
        )
        self.pseudo = gmm.labels
        self.confidence = gmm.coefficient(self.hparams.coeff)
        return {
            "pl_accuracy": 100.0 * (gmm.labels == inference.labels).float().mean().item(),
            "jmds_mean": gmm.coefficient("jmds").mean().item(),
        }

    def mixup_pairs(self, batch_size: int, device: torch.device):
        """(lambda [B], partner permutation [B]): lambda ~ Beta(alpha, alpha); alpha 0: no mixup."""
        alpha = self.hparams.alpha
        if alpha > 0:
            beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
            return beta.sample((batch_size,)).to(device), torch.randperm(batch_size).to(device)
        return torch.ones(batch_size, device=device), torch.arange(batch_size, device=device)

    def training_step(self, batch: Batch, info: StepInfo) -> StepOutput:
        assert self.pseudo is not None and self.confidence is not None, "on_epoch_start runs before training"
        images = batch.images
        rows = batch.indices.to(self.pseudo.device)
        targets = self.pseudo[rows].to(images.device)
        confidence = self.confidence[rows].to(images.device)
        lam, perm = self.mixup_pairs(images.shape[0], images.device)
        shape = (images.shape[0],) + (1,) * (images.dim() - 1)
        mixed_images = lam.view(shape).to(images.dtype) * images + (1 - lam.view(shape)).to(images.dtype) * images[perm]
        logits = self.model(mixed_images)
        per_sample, mixed = mixup_per_sample(logits, targets, confidence, lam, perm, self.num_classes)
        # The weighter scores the real images with their pseudo-labels; the logits are of mixed images, so none
        # are handed over (a logit-based weighter recomputes them on the real images).
        return StepOutput(
            per_sample=self.hparams.cls_par * per_sample,
            targets=targets,
            weight_images=images,
            logs={"loss_mix": mixed.detach().mean()},
        )

    def sampler_labels(self) -> Optional[torch.Tensor]:
        return self.pseudo
