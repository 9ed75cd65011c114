#!/usr/bin/env python
"""Cost of NS: time per training epoch and peak memory with and without NS, measured in one run on the
same model and data, through the trainer's own step (``Trainer.train_step``: SHOT's IM + pseudo-label
loss, backward, SGD step). Data loading is left out (batches are generated in memory), so the ratio is
the compute cost of NS, the honest worst case.

    python benchmarks/ns_overhead.py                 # CPU: LeNet with a 500-unit fc layer (the digits recipe until 2026-11-30), batch 64, 28x28
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

import torch
from _shot_step import batches, device_name, shot_trainer
from _shot_step import preset as preset_for
from _shot_step import step_time as epoch_time

ITERS = {"cpu": 70, "cuda": 40}  # iterations per epoch


def build(device: str, preset: dict, ns: bool, amp: bool, ns_amp: bool, ns_graph: bool = True):
    weighting = {"name": "ns", "m": 4, "sigma": 0.6, "amp": ns_amp, "graph": ns_graph, "save_scores": False}
    return shot_trainer(device, preset, amp, weighting if ns else None)


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
    preset = preset_for(dev, iters=args.iters or ITERS["cuda" if dev.startswith("cuda") else "cpu"])
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
    name = device_name(dev)
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
