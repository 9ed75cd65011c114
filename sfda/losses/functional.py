"""Numerically stable building blocks shared by the per-sample losses (all in float32, all per sample).

- ``log p`` always comes from ``log_softmax``, never from ``log(softmax)``;
- ``log(1 - p_c)`` is ``logsumexp(z_k, k != c) - logsumexp(z)``: exact and finite for logits far apart
  (at logits +-30, 1 - p_y is 1e-26 and would round to 0 in float32 if computed as ``1 - p_y``);
- ``p_y^q`` is ``exp(q log p_y)`` and ``1 - p_y^q`` is ``-expm1(q log p_y)`` (exact as q -> 0).
"""

from __future__ import annotations

import torch


def as_float(logits: torch.Tensor) -> torch.Tensor:
    """The logits in float32 (losses are computed in float32 even under autocast)."""
    return logits.float()


def pick(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """values[i, targets[i]] for [N, K] values and [N] targets."""
    return values.gather(1, targets.long().view(-1, 1)).squeeze(1)


def log1m_prob(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """log(1 - p_c) for class indices ``classes`` ([N] or [N, J]) of float32 logits [N, K].

    Computed as logsumexp over the other classes minus logsumexp over all classes, so it stays finite (and
    keeps its gradient) when p_c rounds to 1 in float32. Needs K >= 2.
    """
    squeeze = classes.dim() == 1
    cls = classes.long().view(logits.shape[0], -1)
    lse = torch.logsumexp(logits, dim=1, keepdim=True)  # [N, 1]
    # [N, J, K]: the logits with the class of each column masked out
    z = logits.unsqueeze(1).expand(-1, cls.shape[1], -1)
    mask = torch.nn.functional.one_hot(cls, logits.shape[1]).bool()
    others = torch.logsumexp(z.masked_fill(mask, float("-inf")), dim=2)  # [N, J]
    out = others - lse
    return out.squeeze(1) if squeeze else out


def one_minus_p(log_p: torch.Tensor) -> torch.Tensor:
    """1 - p from log p, as -expm1(log p) (accurate when p is close to 1 but not equal to it)."""
    return -torch.expm1(log_p)


def gce_term(log_py: torch.Tensor, q: float) -> torch.Tensor:
    """(1 - p_y^q) / q = -expm1(q log p_y) / q (tends to -log p_y as q -> 0)."""
    return -torch.expm1(q * log_py) / q


def nce(log_p: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Normalised CE: log p_y / sum_k log p_k, in [0, 1]. The denominator is at most -K log K < 0."""
    return pick(log_p, targets) / log_p.sum(dim=1)


def nfl(log_p: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
    """Normalised focal loss with detached modulating factors (APL's NFL):
    (1-p_y)^g (-log p_y) / sum_k (1-p_k)^g (-log p_k); only the log p terms carry gradient."""
    factor = one_minus_p(log_p.detach()).clamp_min(0.0).pow(gamma)
    fl = factor * (-log_p)
    return pick(fl, targets) / fl.sum(dim=1).clamp_min(1e-30)


def project_to_scaled_simplex(v: torch.Tensor, total: float) -> torch.Tensor:
    """Euclidean projection of v [N] onto {w >= 0, sum w = total} (sort-based, O(N log N))."""
    u, _ = torch.sort(v, descending=True)
    css = torch.cumsum(u, 0) - total
    j = torch.arange(1, v.numel() + 1, device=v.device, dtype=v.dtype)
    # u_j - css_j / j > 0 holds on a prefix j = 1..rho of the sorted values (rho >= 1); no host sync
    rho = (u - css / j > 0).sum().clamp_min(1)
    theta = css.gather(0, (rho - 1).view(1)) / rho.to(v.dtype)
    return (v - theta).clamp_min(0.0)
