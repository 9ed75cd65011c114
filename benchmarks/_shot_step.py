"""What the step benchmarks (``ns_overhead.py``, ``ddp_overhead.py``, ``difo_step.py``) share: the hardware
presets, a config for one method's step, the trainer around it, and batches generated in memory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from sfda.config import config_from_dict
from sfda.datatypes import StepInfo
from sfda.engine.optim import build_optimizer
from sfda.engine.trainer import Trainer
from sfda.models.network import build_model
from sfda.registry import METHODS
from sfda.samplers import build_sampler
from sfda.weighting import build_weighter

PRESETS: Dict[str, Dict[str, Any]] = {
    # CPU: LeNet with a 500-unit fc layer (the digits recipe until 2026-11-30), 28x28 grey; GPU: ResNet-50 at 224x224 (Office-Home)
    "cpu": {"backbone": "lenet", "params": {"hidden": 500}, "size": 28, "channels": 1, "classes": 10, "batch": 64},
    "cuda": {"backbone": "resnet50", "params": {}, "size": 224, "channels": 3, "classes": 65, "batch": 64},
}


def preset(device: str, **changes: Any) -> Dict[str, Any]:
    """The preset for ``device`` (cuda or cpu), with the script's own values (``iters``, ...)."""
    return {**PRESETS["cuda" if device.startswith("cuda") else "cpu"], **changes}


class Sized:
    """A stand-in training set: the trainer only asks its length."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


class NullLog:
    def info(self, *a):
        pass

    def scalars(self, *a, **k):
        pass


def step_config(
    device: str,
    preset: dict,
    amp: bool,
    method: Optional[dict] = None,
    weighting: Optional[dict] = None,
    epochs: int = 1,
):
    """A resolved config for one method's training step (SHOT with cls_par 0.3 unless ``method`` says)."""
    return config_from_dict(
        {
            "device": device,
            "seed": 0,
            "data": {"num_classes": preset["classes"], "batch_size": preset["batch"], "num_workers": 0},
            "model": {"backbone": preset["backbone"], "pretrained": False, "params": preset["params"]},
            "optim": {"epochs": epochs, "lr": 0.01, "amp": amp},
            "method": method or {"name": "shot", "cls_par": 0.3},
            "weighting": weighting or {"name": "none"},
            "log": {"tensorboard": False, "progress": "none"},
        }
    )


def trainer_for(cfg, method, train_set, device: str):
    """The shared trainer around ``method`` (no evaluation set, no run folder) and its optimiser."""
    classes = int(cfg.data.num_classes)
    trainer = Trainer(
        cfg,
        method,
        train_set,
        None,
        device,
        NullLog(),
        Path("."),
        build_weighter(cfg, classes),
        build_sampler(cfg, classes),
    )
    return trainer, build_optimizer(method.param_groups(), cfg.optim)


def shot_trainer(device: str, preset: dict, amp: bool, weighting: Optional[dict] = None):
    """SHOT's step (IM + pseudo-label CE, random pseudo-labels) on a model built with seed 0; (trainer, opt)."""
    cfg = step_config(device, preset, amp, weighting=weighting)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    method = METHODS.get("shot")(model, preset["classes"], dict(cfg.method), cfg)
    method.setup(None, device)
    n = preset["batch"] * preset["iters"]
    method.pseudo = torch.randint(0, preset["classes"], (n,), device=device)
    return trainer_for(cfg, method, Sized(n), device)


def batches(device: str, preset: dict) -> list:
    """``iters`` batches of random images (seed 1) with zero labels and consecutive dataset indices."""
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(preset["iters"]):
        x = torch.randn(preset["batch"], preset["channels"], preset["size"], preset["size"], generator=g).to(device)
        idx = torch.arange(i * preset["batch"], (i + 1) * preset["batch"], device=device)
        out.append((x, torch.zeros(preset["batch"], dtype=torch.long, device=device), idx))
    return out


def step_time(trainer, opt, data: list, device: str) -> float:
    """Seconds for the trainer's own step (``Trainer.train_step``) over ``data``, synchronised on CUDA."""
    trainer.method.train_mode()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for it, (x, y, idx) in enumerate(data):
        trainer.train_step(x, y, idx, opt, StepInfo(0, 1, it, len(data)))
    sync()
    return time.perf_counter() - t0


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's with the thread count, for the benchmarks' last line."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
