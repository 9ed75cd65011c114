#!/usr/bin/env python
"""Cost of the multi-process code path at world size 1: training throughput of the trainer's own step
(``Trainer.train_step``: SHOT's IM + pseudo-label loss, backward, SGD step) without a process group, and with
a one-process group (gloo/NCCL), where the method trains through PyTorch's DistributedDataParallel wrapper,
BatchNorm is the synchronised kind (``distributed.sync_bn``) and the IM term goes through the global-batch
path. Both variants run in one process on the same data, alternating block by block, after warm-up; data
loading is left out (batches are generated in memory).

    python benchmarks/ddp_overhead.py                 # CPU: LeNet with the digits recipe's 500-unit layer, batch 64, 28x28
    python benchmarks/ddp_overhead.py --device cuda   # GPU: ResNet-50, batch 64, 224x224, synthetic images
    python benchmarks/ddp_overhead.py --device cuda --amp

The last line reads ``overhead=+X.XX% plain=N.N img/s ddp=N.N img/s device=NAME`` (the slowdown of the
wrapped step; under 2 % is the target on a GPU).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time
from pathlib import Path

import torch

from sfda.config import config_from_dict
from sfda.datatypes import StepInfo
from sfda.engine import distributed
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
        "iters": 40,
    },
    "cuda": {"backbone": "resnet50", "params": {}, "size": 224, "channels": 3, "classes": 65, "batch": 64, "iters": 40},
}


class _Sized:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


class _NullLog:
    def info(self, *a):
        pass

    def scalars(self, *a, **k):
        pass


def build(device: str, preset: dict, amp: bool):
    cfg = config_from_dict(
        {
            "device": device,
            "seed": 0,
            "data": {"num_classes": preset["classes"], "batch_size": preset["batch"], "num_workers": 0},
            "model": {"backbone": preset["backbone"], "pretrained": False, "params": preset["params"]},
            "optim": {"epochs": 1, "lr": 0.01, "amp": amp},
            "method": {"name": "shot", "cls_par": 0.3},
            "log": {"tensorboard": False, "progress": "none"},
        }
    )
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    method = METHODS.get("shot")(model, preset["classes"], dict(cfg.method), cfg)
    method.setup(None, device)
    n = preset["batch"] * preset["iters"]
    method.pseudo = torch.randint(0, preset["classes"], (n,), device=device)
    trainer = Trainer(
        cfg,
        method,
        _Sized(n),
        None,
        device,
        _NullLog(),
        Path("."),
        build_weighter(cfg, preset["classes"]),
        build_sampler(cfg, preset["classes"]),
    )
    return trainer, build_optimizer(method.param_groups(), cfg.optim)


def batches(device, preset):
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(preset["iters"]):
        x = torch.randn(preset["batch"], preset["channels"], preset["size"], preset["size"], generator=g).to(device)
        idx = torch.arange(i * preset["batch"], (i + 1) * preset["batch"], device=device)
        out.append((x, torch.zeros(preset["batch"], dtype=torch.long, device=device), idx))
    return out


def block_time(trainer, opt, data, device) -> float:
    trainer.method.train_mode()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for it, (x, y, idx) in enumerate(data):
        trainer.train_step(x, y, idx, opt, StepInfo(0, 1, it, len(data)))
    sync()
    return time.perf_counter() - t0


def one_process_group() -> None:
    """A process group of world size 1 (as ``torchrun --nproc_per_node 1`` makes)."""
    if "WORLD_SIZE" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(
            {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        )
    distributed.init_from_env()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5, help="timed blocks per variant")
    ap.add_argument("--block", type=int, default=10, help="iterations per timed block (the variants alternate)")
    ap.add_argument("--amp", action="store_true", help="mixed precision for the training step (CUDA)")
    ap.add_argument("--iters", type=int, default=None, help="iterations of generated data (default: preset)")
    args = ap.parse_args()
    dev = args.device
    preset = dict(PRESETS["cuda" if dev.startswith("cuda") else "cpu"])
    if args.iters:
        preset["iters"] = args.iters
    if dev.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    plain = build(dev, preset, args.amp)  # built before the group exists: the trainer stays single-process
    one_process_group()
    wrapped = build(dev, preset, args.amp)
    assert wrapped[0].dist.active and not plain[0].dist.active
    runs = {"plain": plain, "ddp": wrapped}
    data = batches(dev, preset)
    size = max(1, min(args.block, len(data)))
    blocks = [data[i : i + size] for i in range(0, len(data) - size + 1, size)]
    times = {"plain": [], "ddp": []}
    with wrapped[0].dist.wrapped(wrapped[0].method):
        for v in runs:  # warm-up (cudnn autotuning, allocator, DDP's first buckets)
            block_time(*runs[v], blocks[0], dev)
        for r in range(args.repeats):
            for i, blk in enumerate(blocks):
                for v in ("plain", "ddp") if (r + i) % 2 == 0 else ("ddp", "plain"):
                    times[v].append(block_time(*runs[v], blk, dev) / len(blk))
    distributed.shutdown()
    step = {v: statistics.median(t) for v, t in times.items()}
    rate = {v: preset["batch"] / step[v] for v in step}
    if dev.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(dev))
    else:
        import platform

        name = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(
        f"model {preset['backbone']}, batch {preset['batch']}, {preset['size']}x{preset['size']}, "
        f"{'mixed precision' if args.amp else 'float32'}; {len(times['ddp'])} blocks of {size} steps per variant"
    )
    for v in ("plain", "ddp"):
        print(f"  {v:>5}: median step {step[v] * 1000:.2f} ms, {rate[v]:.1f} images/s")
    print(
        f"overhead={100 * (step['ddp'] / step['plain'] - 1):+.2f}% plain={rate['plain']:.1f} img/s "
        f"ddp={rate['ddp']:.1f} img/s device={name.replace(' ', '_')}"
    )


if __name__ == "__main__":
    main()
