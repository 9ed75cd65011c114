#!/usr/bin/env python
"""Cost of the multi-process code path at world size 1: training throughput of the trainer's own step
(``Trainer.train_step``: SHOT's IM + pseudo-label loss, backward, SGD step) without a process group, and with
a one-process group (gloo/NCCL), where the method trains through PyTorch's DistributedDataParallel wrapper,
BatchNorm is the synchronised kind (``distributed.sync_bn``) and the IM term goes through the global-batch
path. Both variants run in one process on the same data, alternating block by block, after warm-up; data
loading is left out (batches are generated in memory).

    python benchmarks/ddp_overhead.py                 # CPU: LeNet with a 500-unit fc layer (the digits recipe until 2026-11-30), batch 64, 28x28
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

import torch
from _shot_step import batches, device_name, shot_trainer
from _shot_step import preset as preset_for
from _shot_step import step_time as block_time

from sfda.engine import distributed

ITERS = 40  # iterations per timed round, both presets


def build(device: str, preset: dict, amp: bool):
    return shot_trainer(device, preset, amp)


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
    preset = preset_for(dev, iters=args.iters or ITERS)
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
    name = device_name(dev)
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
