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
- the state (queue, p*, counters) is the loss module's extra state (``state_dict()``), so a method that saves
  its criterion's state_dict in its resume state resumes it exactly.
External sample weights multiply lbar_i; they do not enter the GMM fit (as in the reference).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..registry import LOSSES
from .base import Loss
from .functional import as_float, check, check_number, pick

P_MIN, P_MAX = 1e-7, 1.0 - 1e-7


def base_loss_np(p: np.ndarray, base: str, gamma: float, q: float) -> np.ndarray:
    if base == "ce":
        return -np.log(p)
    if base == "fl":
        return -((1.0 - p) ** gamma) * np.log(p)
    return (1.0 - p ** q) / q


def base_grad_abs(p: np.ndarray, base: str, gamma: float, q: float) -> np.ndarray:
    """|l'(p)| of the base loss with respect to p_y."""
    if base == "ce":
        return 1.0 / p
    if base == "fl":
        return np.abs(gamma * (1.0 - p) ** (gamma - 1.0) * np.log(p) - (1.0 - p) ** gamma / p)
    return p ** (q - 1.0)


def fit_gmm_1d(x: np.ndarray, iters: int = 10, reg_covar: float = 1e-3):
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


def clipping_ratio(p_star: float, grid_h: np.ndarray, clean, noisy, base: str, gamma: float, q: float) -> float:
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


def solve_threshold(h: np.ndarray, target: float, base: str = "ce", gamma: float = 0.5, q: float = 0.7, *,
                    grid: int = 1000, max_iter: int = 10, tol: float = 1e-7, gmm_iters: int = 10,
                    reg_covar: float = 1e-3) -> float:
    """The threshold p* for the H values in the queue (see the module docstring)."""
    mu, var, _ = fit_gmm_1d(h, gmm_iters, reg_covar)
    clean, noisy = (mu[0], var[0]), (mu[1], var[1])
    grid_h = np.linspace(-math.log(P_MAX), -math.log(P_MIN), grid)

    def ratio(ps):
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


@LOSSES.register("ce_ogc", aliases=("ogc", "ogc_ce"))
class OGCLoss(Loss):
    """CE + OGC (Ye et al., AAAI 2025): CE with d/dp_y clipped below an adaptive threshold p*.

    ``base: fl`` or ``gce`` for OGC-FL / OGC-GCE; p* is re-optimised every ``interval`` calls (see the module
    docstring)."""

    defaults = {
        "base": "ce",          # ce | fl | gce
        "gamma": 0.5,          # focal gamma (base fl)
        "q": 0.7,              # GCE q (base gce)
        "eps": 20.0,           # target ratio 1 + lr * eps
        "lr": 0.01,            # learning rate in the target ratio (the reference: the optimiser's current lr)
        "interval": 32,        # calls between threshold updates
        "queue_size": 4096,    # H values kept for the GMM
        "grid": 1000,
        "max_iter": 10,        # bisection iterations
        "tol": 1e-7,
        "gmm_iters": 10,
        "reg_covar": 1e-3,
    }

    def __init__(self, num_classes, **params):
        super().__init__(num_classes, **params)
        check(self.base in ("ce", "fl", "gce"), self.name, "base", f"must be ce, fl or gce, got {self.base!r}", "ce")
        check_number(self.name, "gamma", self.gamma, 0.5, low=0.0)
        check_number(self.name, "q", self.q, 0.7, low=0.0, high=1.0, low_open=True)
        check_number(self.name, "eps", self.eps, 20.0, low=0.0)
        check_number(self.name, "lr", self.lr, 0.01, low=0.0)
        for key, ex in (("interval", 32), ("queue_size", 4096), ("grid", 1000), ("max_iter", 10), ("gmm_iters", 10)):
            check_number(self.name, key, getattr(self, key), ex, low=1, integer=True)
        check_number(self.name, "tol", self.tol, 1e-7, low=0.0, low_open=True)
        check_number(self.name, "reg_covar", self.reg_covar, 1e-3, low=0.0)
        self.p_star = P_MIN
        self.calls = 0
        self.updates = 0
        # the FIFO queue of H = -log p_y lives on the loss's device (copied to the host only for the fit)
        self.queue = torch.zeros(int(self.queue_size))
        self._filled = 0
        self._pos = 0

    def get_extra_state(self):
        return {"p_star": self.p_star, "calls": self.calls, "updates": self.updates, "queue": self.queue.clone(),
                "filled": self._filled, "pos": self._pos}

    def set_extra_state(self, state):
        self.p_star, self.calls, self.updates = state["p_star"], state["calls"], state["updates"]
        self.queue, self._filled, self._pos = state["queue"].clone(), state["filled"], state["pos"]

    @property
    def _queue(self) -> np.ndarray:
        """The queue's values on the host (float64), in no particular order."""
        return self.queue.detach().double().cpu().numpy()

    @property
    def target_ratio(self) -> float:
        return 1.0 + float(self.lr) * float(self.eps)

    @property
    def tau(self) -> float:
        return float(base_grad_abs(np.array([self.p_star]), self.base, float(self.gamma), float(self.q))[0])

    def _base(self, lp_y: torch.Tensor) -> torch.Tensor:
        if self.base == "ce":
            return -lp_y
        if self.base == "fl":
            return -torch.exp(float(self.gamma) * torch.log1p(-torch.exp(lp_y))) * lp_y
        return -torch.expm1(float(self.q) * lp_y) / float(self.q)

    def push(self, h: torch.Tensor) -> None:
        """Append H values to the FIFO queue (the oldest are overwritten); no host synchronisation."""
        Q = self.queue.numel()
        h = h.detach().float().reshape(-1)[-Q:]
        if self.queue.device != h.device:
            self.queue = self.queue.to(h.device)
        idx = (self._pos + torch.arange(h.numel(), device=h.device)) % Q
        self.queue[idx] = h
        self._pos = int((self._pos + h.numel()) % Q)
        self._filled = min(Q, self._filled + h.numel())

    def update_threshold(self) -> float:
        self.p_star = solve_threshold(self._queue, self.target_ratio, self.base, float(self.gamma), float(self.q),
                                      grid=int(self.grid), max_iter=int(self.max_iter), tol=float(self.tol),
                                      gmm_iters=int(self.gmm_iters), reg_covar=float(self.reg_covar))
        self.updates += 1
        return self.p_star

    def forward(self, logits, targets, indices=None):
        lp_y = pick(F.log_softmax(as_float(logits), dim=1), targets)
        lp_c = lp_y.clamp(math.log(P_MIN), math.log(P_MAX))
        ps = float(self.p_star)
        l_star = float(base_loss_np(np.array([ps]), self.base, float(self.gamma), float(self.q))[0])
        clipped = 1.0 - self.tau * torch.exp(lp_y) + l_star
        loss = torch.where(torch.exp(lp_c) <= ps, clipped, self._base(lp_c))
        # state: queue of H = -log p_y and the periodic threshold update
        self.push(-lp_c.detach())
        self.calls += 1
        if self._filled >= self.queue.numel() and self.calls % int(self.interval) == 0:
            self.update_threshold()
        return loss
