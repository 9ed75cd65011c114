#!/usr/bin/env python
"""Cost of DIFO beside SHOT: seconds per training step through the trainer's own step (``Trainer.train_step``:
forward, the method's losses, backward, SGD step) on the same model and synthetic batches, and the time of DIFO's
epoch-start work (CLIP image features of the target, computed once per run, and one prompt-tuning pass, every
epoch). The CLIP weights are random (no download): cost does not depend on the weights.

    python benchmarks/difo_step.py                  # CPU: LeNet (28x28 grey), batch 64, the tiny CLIP
    python benchmarks/difo_step.py --device cuda    # GPU: ResNet-50 at 224, batch 64, 65 classes, random ViT-B/32

Needs open_clip (``pip install -e ".[clip]"``). The variants alternate block by block after a warm-up; the
median is reported. The last line reads ``difo_step_s=X shot_step_s=Y ratio=Z refresh_s=R features_s=F device=NAME``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from sfda.config import config_from_dict
from sfda.datatypes import Inference, StepInfo
from sfda.engine.optim import build_optimizer
from sfda.engine.trainer import Trainer
from sfda.models.network import build_model
from sfda.registry import METHODS
from sfda.samplers import build_sampler
from sfda.weighting import build_weighter

PRESETS = {
    "cpu": {
        "backbone": "lenet",
        "params": {"hidden": 500},
        "size": 28,
        "channels": 1,
        "classes": 10,
        "batch": 64,
        "iters": 30,
        "clip_arch": "tiny",
    },
    "cuda": {
        "backbone": "resnet50",
        "params": {},
        "size": 224,
        "channels": 3,
        "classes": 65,
        "batch": 64,
        "iters": 40,
        "clip_arch": "ViT-B-32",
    },
}


class _Images:
    """N synthetic images, ``(image, label, index)`` like every sfda dataset (CLIP's view of the target)."""

    def __init__(self, preset: dict):
        g = torch.Generator().manual_seed(2)
        n = preset["batch"] * preset["iters"]
        self.images = torch.randn(n, preset["channels"], preset["size"], preset["size"], generator=g)
        self.labels = torch.randint(0, preset["classes"], (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i]), i


class _NullLog:
    def info(self, *a):
        pass

    def scalars(self, *a, **k):
        pass


def build(name: str, device: str, preset: dict, data: _Images, names_file: str, amp: bool):
    method_cfg = {"name": "shot", "cls_par": 0.3}
    if name == "difo":
        method_cfg = {
            "name": "difo",
            "clip_arch": preset["clip_arch"],
            "clip_pretrained": False,
            "class_names": names_file,
        }
    cfg = config_from_dict(
        {
            "device": device,
            "seed": 0,
            "data": {"num_classes": preset["classes"], "batch_size": preset["batch"], "num_workers": 0},
            "model": {"backbone": preset["backbone"], "pretrained": False, "params": preset["params"]},
            "optim": {"epochs": 2, "lr": 0.01, "amp": amp},
            "method": method_cfg,
            "log": {"tensorboard": False, "progress": "none"},
        }
    )
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    # cfg=None at setup: CLIP's view of the target is the data set handed to setup (here the synthetic images)
    method = METHODS.get(name)(model, preset["classes"], dict(cfg.method), None)
    method.setup(data, device)
    method.cfg = cfg
    trainer = Trainer(
        cfg,
        method,
        data,
        None,
        device,
        _NullLog(),
        Path("."),
        build_weighter(cfg, preset["classes"]),
        build_sampler(cfg, preset["classes"]),
    )
    return trainer, build_optimizer(method.param_groups(), cfg.optim)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def epoch_start(trainer, data: _Images, device: str) -> float:
    """The method's epoch-start work on an eval pass of the synthetic target; seconds."""
    model = trainer.model
    model.eval()
    with torch.no_grad():
        feats, logits = zip(
            *(model(data.images[i : i + 256].to(device), return_features=True) for i in range(0, len(data), 256))
        )
    inference = Inference(torch.cat(feats), torch.cat(logits), data.labels.to(device))
    sync(device)
    t0 = time.perf_counter()
    trainer.method.on_epoch_start(0, inference)
    sync(device)
    return time.perf_counter() - t0


def steps(trainer, opt, data: _Images, device: str, block: range) -> float:
    trainer.method.train_mode()
    sync(device)
    t0 = time.perf_counter()
    batch = int(trainer.cfg.data.batch_size)
    for it in block:
        lo = (it % (len(data) // batch)) * batch
        idx = torch.arange(lo, lo + batch, device=device)
        x = data.images[lo : lo + batch].to(device)
        trainer.train_step(x, torch.zeros_like(idx), idx, opt, StepInfo(0, 2, it, 2 * len(block)))
    sync(device)
    return (time.perf_counter() - t0) / len(block)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5, help="timed blocks per variant")
    ap.add_argument("--block", type=int, default=10, help="steps per timed block")
    ap.add_argument("--amp", action="store_true", help="mixed precision for the training step (CUDA)")
    args = ap.parse_args()
    dev = args.device
    preset = PRESETS["cuda" if dev.startswith("cuda") else "cpu"]
    if dev.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    data = _Images(preset)
    with tempfile.TemporaryDirectory() as tmp:
        names = Path(tmp) / "names.txt"
        names.write_text("\n".join(f"class_{k}" for k in range(preset["classes"])) + "\n")
        runs = {v: build(v, dev, preset, data, str(names), args.amp) for v in ("shot", "difo")}
    runs["shot"][0].method.pseudo = torch.randint(0, preset["classes"], (len(data),), device=dev)
    refresh_first = epoch_start(runs["difo"][0], data, dev)  # CLIP image features (once per run) + prompt tuning
    refresh = epoch_start(runs["difo"][0], data, dev)  # later epochs: prompt tuning only (features cached)
    per = {"shot": [], "difo": []}
    for v in per:  # warm-up
        steps(*runs[v], data, dev, range(3))
    for r in range(args.repeats):
        for v in ("shot", "difo") if r % 2 == 0 else ("difo", "shot"):
            per[v].append(steps(*runs[v], data, dev, range(r * args.block, (r + 1) * args.block)))
    med = {v: statistics.median(t) for v, t in per.items()}
    name = torch.cuda.get_device_name(torch.device(dev)) if dev.startswith("cuda") else platform.processor() or "cpu"
    n = len(data)
    print(
        f"preset: {preset['backbone']} batch {preset['batch']}, {preset['classes']} classes, CLIP "
        f"{preset['clip_arch']} (random), target of {n} synthetic images, {torch.get_num_threads()} thread(s)"
    )
    print(f"seconds per step: SHOT {med['shot']:.4f}, DIFO {med['difo']:.4f} (x{med['difo'] / med['shot']:.2f})")
    print(
        f"DIFO epoch start: first {refresh_first:.2f} s (CLIP image features + prompt tuning), then {refresh:.2f} s "
        f"(prompt tuning over {n} cached features)"
    )
    print(
        f"difo_step_s={med['difo']:.4f} shot_step_s={med['shot']:.4f} ratio={med['difo'] / med['shot']:.2f} "
        f"refresh_s={refresh:.2f} features_s={refresh_first - refresh:.2f} device={name.replace(' ', '_')}"
    )


if __name__ == "__main__":
    main()
