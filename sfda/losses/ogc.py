"""CE + OGC: optimized gradient clipping (Ye et al., AAAI 2025), as a per-sample loss with global state.

The loss clips the gradient of the base loss l (CE, focal or GCE) with respect to p_y at tau = |l'(p*)|:

    lbar(p_y) = l(p_y)                      if p_y > p*
              = 1 - tau * p_y + l(p*)       otherwise (linear in p_y: |d lbar / d p_y| = tau)

For CE, tau * p* = 1 and the branches join. The threshold p* is global state, updated every ``interval``
training calls (32 in the reference) from a FIFO queue of the last ``queue_size`` (4096) values of
H = -log p_y: a two-component 1-D Gaussian mixture (``gmm_iters`` = 10 EM iterations, ``reg_covar`` 1e-3)
splits H into a clean (lower mean) and a noisy component; each becomes a normal density on a grid of
``grid`` (1000) H values over [-log(1 - 1e-7), -log(1e-7)], and p* is found by bisection (``max_iter``
10, ``tol`` 1e-7) over [1e-7, 1 - 1e-7] so that

    R(p*) = E_noisy[min(|l'(p)|, tau(p*))] / E_clean[min(|l'(p)|, tau(p*))] = 1 + lr * eps,   eps = 20.

If no clipping is needed p* = 1e-7; if even maximal clipping cannot reach the target, p* = 1 - 1e-7.
Before the queue first fills p* = 1e-7 (no clipping).

Deviations from the reference, where the SFDA interface differs:
- ``lr``: the reference reads the optimiser's current learning rate; a loss does not see the optimiser, so
  the learning rate in the target ratio is this fixed parameter (default 0.01, the base lr of SHOT's
  Office-Home and digits configs; the ratio is then 1.2, the reference's value at lr 0.01);
- the GMM is fitted with a small EM in NumPy (float64), initialised at the 25th and 75th percentiles of
  H, instead of scikit-learn's k-means initialisation;
- the state (queue, p*, counters) is in the loss module's buffers (``state_dict()``), so a method that saves
  its criterion's state_dict in its resume state resumes it exactly.
External sample weights multiply lbar_i; they do not enter the GMM fit (as in the reference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..params import param
from ..registry import LOSSES
from .base import Loss, LossParams
from .functional import as_float, pick

P_MIN, P_MAX = 1e-7, 1.0 - 1e-7


def base_loss_np(p: np.ndarray, base: str, gamma: float, q: float) -> np.ndarray:
    if base == "ce":
        return -np.log(p)
    if base == "fl":
        return -((1.0 - p) ** gamma) * np.log(p)
    return (1.0 - p**q) / q


def base_grad_abs(p: np.ndarray, base: str, gamma: float, q: float) -> np.ndarray:
    """|l'(p)| of the base loss with respect to p_y."""
    if base == "ce":
        return 1.0 / p
    if base == "fl":
        return np.abs(gamma * (1.0 - p) ** (gamma - 1.0) * np.log(p) - (1.0 - p) ** gamma / p)
    return p ** (q - 1.0)


def fit_gmm_1d(x: np.ndarray, iters: int = 10, reg_covar: float = 1e-3) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-component 1-D Gaussian mixture by EM; returns (means, variances, weights), means ascending."""
    x = np.asarray(x, dtype=np.float64)
    mu = np.percentile(x, [25.0, 75.0])
    var = np.full(2, x.var() + reg_covar)
    pi = np.full(2, 0.5)
    for _ in range(iters):
        logp = -0.5 * (x[:, None] - mu) ** 2 / var - 0.5 * np.log(2 * np.pi * var) + np.log(pi)
        logp -= logp.max(axis=1, keepdims=True)
        r = np.exp(logp)
        r /= r.sum(axis=1, keepdims=True)
        nk = r.sum(axis=0) + 1e-12
        mu = (r * x[:, None]).sum(axis=0) / nk
        var = (r * (x[:, None] - mu) ** 2).sum(axis=0) / nk + reg_covar
        pi = nk / nk.sum()
    order = np.argsort(mu)
    return mu[order], var[order], pi[order]


def clipping_ratio(
    p_star: float,
    grid_h: np.ndarray,
    clean: Tuple[float, float],
    noisy: Tuple[float, float],
    base: str,
    gamma: float,
    q: float,
) -> float:
    """R(p*) = E_noisy[min(|l'|, tau)] / E_clean[min(|l'|, tau)] over the grid, densities normalised."""
    p = np.exp(-grid_h)
    g = base_grad_abs(p, base, gamma, q)
    tau = float(base_grad_abs(np.array([p_star]), base, gamma, q)[0])
    c = np.minimum(g, tau)
    out = []
    for mu, var in (noisy, clean):
        logf = -0.5 * (grid_h - mu) ** 2 / var
        f = np.exp(logf - logf.max())
        out.append(float((f * c).sum() / f.sum()))
    return out[0] / max(out[1], 1e-300)


def solve_threshold(
    h: np.ndarray,
    target: float,
    base: str = "ce",
    gamma: float = 0.5,
    q: float = 0.7,
    *,
    grid: int = 1000,
    max_iter: int = 10,
    tol: float = 1e-7,
    gmm_iters: int = 10,
    reg_covar: float = 1e-3,
) -> float:
    """The threshold p* for the H values in the queue (see the module docstring)."""
    mu, var, _ = fit_gmm_1d(h, gmm_iters, reg_covar)
    clean, noisy = (mu[0], var[0]), (mu[1], var[1])
    grid_h = np.linspace(-math.log(P_MAX), -math.log(P_MIN), grid)

    def ratio(ps: float) -> float:
        return clipping_ratio(ps, grid_h, clean, noisy, base, gamma, q)

    if ratio(P_MIN) <= target:
        return P_MIN
    if ratio(P_MAX) > target:
        return P_MAX
    lo, hi = P_MIN, P_MAX
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        if ratio(mid) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < tol:
            break
    return 0.5 * (lo + hi)


class HostScalars(nn.Module):
    """Scalar state read on the host at every call (a threshold, counters): 0-d float64/int64 buffers that
    stay on the CPU when the loss moves to a device, so reading them never waits for the device. They are
    buffers, so ``state_dict`` holds them; ``scalars["name"]`` reads one, ``scalars["name"] = v`` sets it."""

    def __init__(self, **initial: float):
        super().__init__()
        for name, value in initial.items():
            dtype = torch.long if isinstance(value, int) else torch.float64
            self.register_buffer(name, torch.tensor(value, dtype=dtype))

    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> HostScalars:
        return self  # .to(device), .half(), ...: the scalars stay where and what they are

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name).item()

    def __setitem__(self, name: str, value: float) -> None:
        getattr(self, name).fill_(value)


@LOSSES.register("ce_ogc", aliases=("ogc", "ogc_ce"))
class OGCLoss(Loss):
    """CE + OGC (Ye et al., AAAI 2025): CE with d/dp_y clipped below an adaptive threshold p*.

    ``base: fl`` or ``gce`` for OGC-FL / OGC-GCE; p* is re-optimised every ``interval`` calls (see the module
    docstring)."""

    @dataclass
    class Params(LossParams):
        base: Literal["ce", "fl", "gce"] = param("ce", help="the clipped loss: CE, focal (fl) or GCE")
        gamma: float = param(0.5, low=0.0, help="focal gamma (base fl)")
        q: float = param(0.7, low=0.0, high=1.0, low_open=True, help="GCE q (base gce)")
        eps: float = param(20.0, low=0.0, help="target ratio 1 + lr * eps")
        lr: float = param(0.01, low=0.0, help="learning rate in the target ratio (reference: the optimiser's lr)")
        interval: int = param(32, low=1, help="calls between threshold updates")
        queue_size: int = param(4096, low=1, help="recent -log p_y values kept for the GMM")
        grid: int = param(1000, low=1, help="grid points of the ratio's integrals")
        max_iter: int = param(10, low=1, help="bisection iterations")
        tol: float = param(1e-7, low=0.0, low_open=True, help="bisection tolerance on p*")
        gmm_iters: int = param(10, low=1, help="EM iterations of the GMM fit")
        reg_covar: float = param(1e-3, low=0.0, help="added to the GMM's variances")

    hparams: Params
    queue: torch.Tensor

    def __init__(self, num_classes: int, hparams: Optional[Params] = None, **overrides: Any) -> None:
        super().__init__(num_classes, hparams, **overrides)
        # the FIFO queue of H = -log p_y lives on the loss's device (copied to the host only for the fit)
        self.register_buffer("queue", torch.zeros(self.hparams.queue_size))
        # p*, calls of forward, threshold updates, values in the queue, next write position
        self.scalars = HostScalars(p_star=P_MIN, calls=0, updates=0, filled=0, position=0)

    @property
    def p_star(self) -> float:
        return float(self.scalars["p_star"])

    @p_star.setter
    def p_star(self, value: float) -> None:
        self.scalars["p_star"] = value

    @property
    def updates(self) -> int:
        """Threshold updates so far."""
        return int(self.scalars["updates"])

    @property
    def _queue(self) -> np.ndarray:
        """The queue's values on the host (float64), in no particular order."""
        return self.queue.detach().double().cpu().numpy()

    @property
    def target_ratio(self) -> float:
        return 1.0 + self.hparams.lr * self.hparams.eps

    def _base_args(self) -> Tuple[str, float, float]:
        return self.hparams.base, self.hparams.gamma, self.hparams.q

    @property
    def tau(self) -> float:
        return float(base_grad_abs(np.array([self.p_star]), *self._base_args())[0])

    def _base(self, lp_y: torch.Tensor) -> torch.Tensor:
        base, gamma, q = self._base_args()
        if base == "ce":
            return -lp_y
        if base == "fl":
            return -torch.exp(gamma * torch.log1p(-torch.exp(lp_y))) * lp_y
        return -torch.expm1(q * lp_y) / q

    def push(self, h: torch.Tensor) -> None:
        """Append H values to the FIFO queue (the oldest are overwritten); no host synchronisation."""
        size = self.queue.numel()
        h = h.detach().float().reshape(-1)[-size:]
        if self.queue.device != h.device:
            self.queue = self.queue.to(h.device)
        position = self.scalars["position"]
        idx = (position + torch.arange(h.numel(), device=h.device)) % size
        self.queue[idx] = h
        self.scalars["position"] = int((position + h.numel()) % size)
        self.scalars["filled"] = min(size, self.scalars["filled"] + h.numel())

    def update_threshold(self) -> float:
        hp = self.hparams
        self.p_star = solve_threshold(
            self._queue,
            self.target_ratio,
            *self._base_args(),
            grid=hp.grid,
            max_iter=hp.max_iter,
            tol=hp.tol,
            gmm_iters=hp.gmm_iters,
            reg_covar=hp.reg_covar,
        )
        self.scalars["updates"] = self.updates + 1
        return self.p_star

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        lp_y = pick(F.log_softmax(as_float(logits), dim=1), targets)
        lp_c = lp_y.clamp(math.log(P_MIN), math.log(P_MAX))
        ps = self.p_star
        l_star = float(base_loss_np(np.array([ps]), *self._base_args())[0])
        clipped = 1.0 - self.tau * torch.exp(lp_y) + l_star
        loss = torch.where(torch.exp(lp_c) <= ps, clipped, self._base(lp_c))
        # state: queue of H = -log p_y and the periodic threshold update
        self.push(-lp_c.detach())
        calls = self.scalars["calls"] + 1
        self.scalars["calls"] = calls
        if self.scalars["filled"] >= self.queue.numel() and calls % self.hparams.interval == 0:
            self.update_threshold()
        return loss
