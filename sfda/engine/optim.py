"""SGD with per-group lr multipliers and the learning-rate schedules."""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError

SCHEDULES = ("shot", "constant", "step", "cosine")


def build_optimizer(groups, o) -> torch.optim.Optimizer:
    if not groups:
        raise ConfigError("nothing to train: every parameter group is frozen (check optim.*_lr_mult)")
    for g in groups:
        g["lr"] = o.lr * g["lr_mult"]
    if o.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                               nesterov=o.nesterov and o.momentum > 0)
    if o.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)
    raise ConfigError(f"optim.optimizer must be 'sgd' or 'adamw', got '{o.optimizer}'")


def lr_factor(o, iteration: int, total: int, iters_per_epoch: int) -> float:
    """Multiplier of the base lr at 0-based ``iteration``.

    shot: (1 + gamma * t/T)^-power with t = iteration + 1 (SHOT updates the counter before the schedule);
    step: product of ``step_factors`` (default 0.1) of the milestones (in epochs) already passed;
    cosine: 0.5 (1 + cos(pi t/T)); an optional linear warm-up over ``warmup_epochs`` multiplies any of them.
    """
    if o.schedule not in SCHEDULES:
        raise ConfigError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, got '{o.schedule}'")
    t = iteration + 1
    p = t / max(total, 1)
    if o.schedule == "shot":
        f = (1.0 + o.gamma * p) ** (-o.power)
    elif o.schedule == "constant":
        f = 1.0
    elif o.schedule == "cosine":
        f = 0.5 * (1.0 + math.cos(math.pi * p))
    else:
        epoch = iteration / max(iters_per_epoch, 1)
        factors = list(o.step_factors) or [0.1] * len(o.milestones)
        if len(factors) != len(o.milestones):
            raise ConfigError("optim.step_factors must have one factor per optim.milestones entry")
        f = 1.0
        for m, fac in zip(o.milestones, factors):
            if epoch >= m:
                f *= fac
    if o.warmup_epochs > 0:
        w = o.warmup_epochs * iters_per_epoch
        if t <= w:
            f *= t / w
    return f


def set_lr(optimizer, base_lr: float, factor: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = base_lr * g.get("lr_mult", 1.0) * factor
