"""Seeding. Every stage seeds all generators from the config's seed at its start, and every epoch reseeds
from (seed, epoch), so a task run alone replays a sweep's run exactly and a resumed run continues exactly."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def derive_seed(seed: int, *salt: int) -> int:
    s = int(seed) & 0xFFFFFFFF
    for x in salt:
        s = (s * 1000003 + int(x) + 0x9E3779B9) & 0x7FFFFFFF
    return s


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def set_deterministic(flag: bool) -> None:
    if flag:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
