#!/usr/bin/env python
"""Cost of NS: time per training epoch and peak memory with and without NS, measured in one run on the
same model and data, through the trainer's own step (``Trainer.train_step``: SHOT's IM + pseudo-label
loss, backward, SGD step). Data loading is left out (batches are generated in memory), so the ratio is
the compute cost of NS, the honest worst case.

    python benchmarks/ns_overhead.py                 # CPU: LeNet with the digits recipe's 500-unit layer, batch 64, 28x28
    python benchmarks/ns_overhead.py --device cuda   # GPU: ResNet-50, batch 64, 224x224, synthetic images

Variants alternate epoch by epoch (or ``--block`` iterations at a time), after warm-up, and the median
epoch time of each is compared. Peak
memory: each variant alone in a child process (CUDA max_memory_allocated; on the CPU the peak resident set). The last line reads ``time_ratio=X.XX memory_ratio=Y.YY device=NAME``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from sfda.config import config_from_dict
from sfda.datatypes import StepInfo
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
        "iters": 70,
    },
    "cuda": {"backbone": "resnet50", "params": {}, "size": 224, "channels": 3, "classes": 65, "batch": 64, "iters": 40},
}


class _FakeSet:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def build(device: str, preset: dict, ns: bool, amp: bool, ns_amp: bool, ns_graph: bool = True):
    cfg = config_from_dict(
        {
            "device": device,
            "seed": 0,
            "data": {"num_classes": preset["classes"], "batch_size": preset["batch"], "num_workers": 0},
            "model": {"backbone": preset["backbone"], "pretrained": False, "params": preset["params"]},
            "optim": {"epochs": 1, "lr": 0.01, "amp": amp},
            "method": {"name": "shot", "cls_par": 0.3},
            "weighting": {"name": "ns", "m": 4, "sigma": 0.6, "amp": ns_amp, "graph": ns_graph, "save_scores": False}
            if ns
            else {"name": "none"},
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
        _FakeSet(n),
        None,
        device,
        _NullLog(),
        Path("."),
        build_weighter(cfg, preset["classes"]),
        build_sampler(cfg, preset["classes"]),
    )
    from sfda.engine.optim import build_optimizer

    return trainer, build_optimizer(method.param_groups(), cfg.optim)


class _NullLog:
    def info(self, *a):
        pass

    def scalars(self, *a, **k):
        pass


def batches(device, preset):
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(preset["iters"]):
        x = torch.randn(preset["batch"], preset["channels"], preset["size"], preset["size"], generator=g).to(device)
        idx = torch.arange(i * preset["batch"], (i + 1) * preset["batch"], device=device)
        out.append((x, torch.zeros(preset["batch"], dtype=torch.long, device=device), idx))
    return out


def epoch_time(trainer, opt, data, device) -> float:
    trainer.method.train_mode()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for it, (x, y, idx) in enumerate(data):
        trainer.train_step(x, y, idx, opt, StepInfo(0, 1, it, len(data)))
    sync()
    return time.perf_counter() - t0


def child(args, preset) -> None:
    """One variant alone in a fresh process, two epochs: its peak memory (CUDA: max_memory_allocated; CPU: peak
    resident set size), so that neither variant's model and optimizer state count in the other's peak."""
    dev = args.device
    trainer, opt = build(dev, preset, args.child == "ns", args.amp, not args.no_ns_amp, not args.no_ns_graph)
    data = batches(dev, preset)
    for _ in range(2):
        epoch_time(trainer, opt, data, dev)
    peak = (
        torch.cuda.max_memory_allocated()
        if dev.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    print(json.dumps({"peak_bytes": peak}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5, help="timed epochs per variant")
    ap.add_argument(
        "--block",
        type=int,
        default=0,
        help="iterations per timed block, the variants alternating by "
        "block (default: a whole epoch; short blocks add the cost of switching models to both)",
    )
    ap.add_argument("--amp", action="store_true", help="mixed precision for the training step too (CUDA)")
    ap.add_argument("--no-ns-amp", action="store_true", help="run the composite pass in float32")
    ap.add_argument("--no-ns-graph", action="store_true", help="run the composite pass without a CUDA graph")
    ap.add_argument("--iters", type=int, default=None, help="iterations per epoch (default: preset)")
    ap.add_argument("--child", choices=["none", "ns"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    dev = args.device
    preset = dict(PRESETS["cuda" if dev.startswith("cuda") else "cpu"])
    if args.iters:
        preset["iters"] = args.iters
    if dev.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    if args.child:
        return child(args, preset)
    runs = {
        v: build(dev, preset, v == "ns", args.amp, not args.no_ns_amp, not args.no_ns_graph) for v in ("none", "ns")
    }
    data = batches(dev, preset)
    for v in runs:  # warm-up (cudnn autotuning, allocator)
        epoch_time(*runs[v], data[: max(3, len(data) // 4)], dev)
    # the variants alternate block by block (a whole epoch by default), so that a slow spell of a shared
    # machine hits both; an epoch's time is the median block time scaled to the epoch
    size = args.block or len(data)
    blocks = [data[i : i + size] for i in range(0, len(data), size)]
    blocks = [b for b in blocks if len(b) == size] or [data]
    per_block = {"none": [], "ns": []}
    for r in range(args.repeats):
        for i, blk in enumerate(blocks):
            for v in ("none", "ns") if (r + i) % 2 == 0 else ("ns", "none"):
                per_block[v].append(epoch_time(*runs[v], blk, dev))
    scale = len(data) / len(blocks[0])
    times = {v: [t * scale for t in ts] for v, ts in per_block.items()}
    med = {v: statistics.median(t) for v, t in times.items()}
    del runs, data
    peak = {}
    for v in ("none", "ns"):
        cmd = (
            [sys.executable, __file__, "--child", v, "--device", dev]
            + (["--amp"] if args.amp else [])
            + (["--no-ns-amp"] if args.no_ns_amp else [])
            + (["--no-ns-graph"] if args.no_ns_graph else [])
            + (["--iters", str(args.iters)] if args.iters else [])
        )
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        peak[v] = json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"]
    mem_ratio = peak["ns"] / peak["none"]
    if dev.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(dev))
    else:
        import platform

        name = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(
        f"model {preset['backbone']}, batch {preset['batch']}, {preset['size']}x{preset['size']}, "
        f"{preset['iters']} iterations per epoch, {args.repeats} timed epochs per variant; training step in "
        f"{'mixed precision' if args.amp else 'float32'}, composite pass in "
        f"{'float32' if args.no_ns_amp or not dev.startswith('cuda') else 'mixed precision'}"
        f"{', as a CUDA graph' if dev.startswith('cuda') and not args.no_ns_graph else ''}"
    )
    for v in ("none", "ns"):
        q = statistics.quantiles(times[v], n=4) if len(times[v]) > 1 else [med[v]] * 3
        print(
            f"  {v:>4}: median epoch {med[v]:.3f} s (quartiles {q[0]:.3f} - {q[2]:.3f}, {len(times[v])} blocks of "
            f"{len(blocks[0])} iterations), peak memory {peak[v] / 2**20:.1f} MiB"
        )
    print(f"time_ratio={med['ns'] / med['none']:.2f} memory_ratio={mem_ratio:.2f} device={name.replace(' ', '_')}")


if __name__ == "__main__":
    main()
