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
from _shot_step import preset as preset_for
from _shot_step import step_config, trainer_for

from sfda.datatypes import Inference, StepInfo
from sfda.models.network import build_model
from sfda.registry import METHODS

CLIP = {"cpu": "tiny", "cuda": "ViT-B-32"}  # the CLIP model DIFO distils (tiny: a small random one for the CPU)
ITERS = {"cpu": 30, "cuda": 40}


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


def build(name: str, device: str, preset: dict, data: _Images, names_file: str, amp: bool):
    method_cfg = {"name": "shot", "cls_par": 0.3}
    if name == "difo":
        method_cfg = {
            "name": "difo",
            "clip_arch": preset["clip_arch"],
            "clip_pretrained": False,
            "class_names": names_file,
        }
    cfg = step_config(device, preset, amp, method=method_cfg, epochs=2)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    # cfg=None at setup: CLIP's view of the target is the data set handed to setup (here the synthetic images)
    method = METHODS.get(name)(model, preset["classes"], dict(cfg.method), None)
    method.setup(data, device)
    method.cfg = cfg
    return trainer_for(cfg, method, data, device)


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
    kind = "cuda" if dev.startswith("cuda") else "cpu"
    preset = preset_for(dev, iters=ITERS[kind], clip_arch=CLIP[kind])
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
