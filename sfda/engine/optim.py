"""SGD with per-group lr multipliers and the learning-rate schedules."""

from __future__ import annotations

import math
from typing import Any, List

import torch

from ..errors import ConfigError

SCHEDULES = ("shot", "constant", "step", "cosine")


def build_optimizer(groups: List[dict], optim_cfg: Any) -> torch.optim.Optimizer:
    if not groups:
        raise ConfigError("nothing to train: every parameter group is frozen (check optim.*_lr_mult)")
    for group in groups:
        group["lr"] = optim_cfg.lr * group["lr_mult"]
    if optim_cfg.optimizer == "sgd":
        return torch.optim.SGD(
            groups,
            lr=optim_cfg.lr,
            momentum=optim_cfg.momentum,
            weight_decay=optim_cfg.weight_decay,
            nesterov=optim_cfg.nesterov and optim_cfg.momentum > 0,
        )
    if optim_cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=optim_cfg.lr, weight_decay=optim_cfg.weight_decay)
    raise ConfigError(f"optim.optimizer must be 'sgd' or 'adamw', got '{optim_cfg.optimizer}'")


def lr_factor(optim_cfg: Any, iteration: int, total: int, iters_per_epoch: int) -> float:
    """Multiplier of the base lr at 0-based ``iteration``.

    shot: (1 + gamma * t/T)^-power with t = iteration + 1 (SHOT updates the counter before the schedule);
    step: product of ``step_factors`` (default 0.1) of the milestones (in epochs) already passed;
    cosine: 0.5 (1 + cos(pi t/T)); an optional linear warm-up over ``warmup_epochs`` multiplies any of them.
    """
    if optim_cfg.schedule not in SCHEDULES:
        raise ConfigError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, got '{optim_cfg.schedule}'")
    t = iteration + 1
    p = t / max(total, 1)
    if optim_cfg.schedule == "shot":
        f = (1.0 + optim_cfg.gamma * p) ** (-optim_cfg.power)
    elif optim_cfg.schedule == "constant":
        f = 1.0
    elif optim_cfg.schedule == "cosine":
        f = 0.5 * (1.0 + math.cos(math.pi * p))
    else:
        epoch = iteration / max(iters_per_epoch, 1)
        factors = list(optim_cfg.step_factors) or [0.1] * len(optim_cfg.milestones)
        if len(factors) != len(optim_cfg.milestones):
            raise ConfigError("optim.step_factors must have one factor per optim.milestones entry")
        f = 1.0
        for milestone, factor in zip(optim_cfg.milestones, factors):
            if epoch >= milestone:
                f *= factor
    if optim_cfg.warmup_epochs > 0:
        w = optim_cfg.warmup_epochs * iters_per_epoch
        if t <= w:
            f *= t / w
    return f


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = base_lr * group.get("lr_mult", 1.0) * factor
