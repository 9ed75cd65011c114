"""What the trainer does differently on several processes (a torchrun launch; docs/distributed.md has the table
of what is global and what is per rank). Without a process group :class:`DistributedTraining` is inert: every
hook returns at once and the trainer runs exactly as on one process.

- data: the global ``data.batch_size`` split evenly over the ranks; training and evaluation samplers sharded
  (:mod:`sfda.samplers.sharded`), the evaluation pass gathered with the dataset indices;
- model: ``distributed.sync_bn`` (:mod:`sfda.engine.sync_bn`), gradients averaged by PyTorch's
  DistributedDataParallel (the method trains through the wrapper; evaluation, weighters and checkpoints use
  the plain model), BatchNorm statistics averaged at the end of each epoch (identical when synchronised);
- method state: broadcast from rank 0 after ``on_epoch_start`` (pseudo-labels, memory banks, JMDS: identical
  on every rank); per-sample loss state (NLNL, truncated GCE) exchanged after every step;
- records: the epoch's training logs averaged over the ranks, the weighter's epoch gathered from every rank.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import random
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler, SequentialSampler

from .. import parallel
from ..neighbours import MemoryBank
from ..samplers.sharded import ShardedSampler, per_rank_batch
from ..state import PerSampleState
from .seed import derive_seed
from .sync_bn import GlobalBatchNorm, convert

SYNC_BN = (GlobalBatchNorm, nn.SyncBatchNorm)
# buffers are synchronised at the wrapper's creation (rank 0's) and at the end of every epoch, not per forward
NO_FORWARD_SYNC: Dict[str, Any] = ({"forward_sync_buffers": False}
                   if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
                   else {"broadcast_buffers": False})


class _Wrapped(DistributedDataParallel):
    """DDP whose attributes fall back to the wrapped model's (``model.netC``, ``model.netF``, ...), so that a
    method's code reads the same with and without the wrapper."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def _reseed_worker(rank: int, worker_id: int) -> None:
    """DataLoader worker seeds differ between ranks (the loaders share one generator)."""
    seed = derive_seed(torch.initial_seed(), rank)
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def _per_sample_states(method: Any) -> List[PerSampleState]:
    """The per-sample states a method's components keep (its losses'), memory banks excluded (they are
    updated with every rank's rows inside the step)."""
    found: List[PerSampleState] = []
    for value in vars(method).values():
        if isinstance(value, nn.Module) and value is not getattr(method, "model", None):
            found += [m for m in value.modules() if isinstance(m, PerSampleState) and not isinstance(m, MemoryBank)]
    return found


def _tensors(tree: Any) -> Iterator[torch.Tensor]:
    if torch.is_tensor(tree):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from _tensors(value)
    elif isinstance(tree, (list, tuple)):
        for value in tree:
            yield from _tensors(value)


class DistributedTraining:
    def __init__(self, cfg: Any, model: nn.Module, device: torch.device):
        self.world_size, self.rank = parallel.world_size(), parallel.rank()
        self.active = parallel.active()
        self.model, self.device = model, device
        spec = cfg.get("distributed") or {}
        self.batch_size = int(cfg.data.batch_size)
        self.test_batch_size = int(cfg.data.test_batch_size)
        self.find_unused = bool(spec.get("find_unused_parameters", False))
        self._row_states: List[PerSampleState] = []
        if not self.active:
            return
        self.batch_size = per_rank_batch(self.batch_size, self.world_size, key="data.batch_size")
        self.test_batch_size = per_rank_batch(self.test_batch_size, self.world_size)
        parallel.set_global_batch_terms(bool(spec.get("global_batch_terms", True)))
        if spec.get("sync_bn", True):
            convert(model, device)

    def describe(self) -> str:
        """One log line for a multi-process run ('' on one process)."""
        if not self.active:
            return ""
        sync = "synchronised" if any(isinstance(m, SYNC_BN) for m in self.model.modules()) else "per rank"
        terms = "global" if parallel.global_batch_terms() else "per rank"
        return (f"{self.world_size} processes (rank 0 writes): {self.batch_size} images per process and step, "
                f"BatchNorm statistics {sync}, batch-level loss terms {terms}")

    # -- data ----------------------------------------------------------------------------------------------
    def samples_per_rank(self, size: int) -> int:
        return -(-size // self.world_size) if self.active else size

    def train_sampler(self, sampler: Optional[Sampler], dataset: Any,
                      generator: torch.Generator) -> Optional[Sampler]:
        """The epoch's sampler of this rank: the one-process order (``sampler``, or shuffling), sharded."""
        if not self.active:
            return sampler
        order = sampler if sampler is not None else torch.utils.data.RandomSampler(dataset, generator=generator)
        return ShardedSampler(order, len(dataset), self.rank, self.world_size, pad=True)

    def eval_sampler(self, dataset: Any) -> Optional[Sampler]:
        if not self.active:
            return None
        return ShardedSampler(SequentialSampler(dataset), len(dataset), self.rank, self.world_size, pad=False)

    def worker_init(self) -> Optional[Any]:
        return functools.partial(_reseed_worker, self.rank) if self.active and self.rank else None

    # -- model -------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def wrapped(self, method: Any) -> Iterator[None]:
        """While training: the method's ``model`` is the DDP wrapper (gradients averaged over the ranks)."""
        if not self.active:
            yield
            return
        plain = method.model
        ids = [self.device.index] if self.device.type == "cuda" else None
        method.model = _Wrapped(plain, device_ids=ids, find_unused_parameters=self.find_unused, **NO_FORWARD_SYNC)
        self._row_states = _per_sample_states(method)
        try:
            yield
        finally:
            method.model = plain

    def sync_buffers(self) -> None:
        """BatchNorm running statistics: the mean over the ranks (unchanged when they are synchronised)."""
        if self.active:
            parallel.average_(list(self.model.buffers()))

    # -- method and weighter state -------------------------------------------------------------------------
    def sync_method(self, method: Any) -> None:
        """After ``on_epoch_start``: every rank takes rank 0's method state (computed from the same gathered
        pass, so this only rules out floating-point drift between ranks)."""
        if self.active:
            parallel.broadcast_(list(_tensors(method.state_dict())))

    def after_step(self, indices: torch.Tensor) -> None:
        """Exchange the rows of the step's samples of every per-sample loss state (NLNL's history, truncated
        GCE's mask), so that each rank holds every sample's state."""
        if not self.active or not self._row_states:
            return
        (rows,) = parallel.gather_rows(indices)
        for state in self._row_states:
            if len(state) == 0:
                continue
            state.grow(int(rows.max().item()) + 1)
            for name in state._fills:
                buffer = state.get(name)
                (values,) = parallel.gather_rows(buffer[indices.to(buffer.device)])
                buffer[rows.to(buffer.device)] = values

    def gather_weighter(self, weighter: Any) -> None:
        if self.active:
            weighter.sync_epoch(lambda t: parallel.gather_varlen(t)[0])

    def average_logs(self, sums: Dict[str, Any]) -> Dict[str, Any]:
        """The epoch's summed step logs, averaged over the ranks (every rank ran the same steps)."""
        if not self.active or not sums:
            return sums
        keys = sorted(sums)
        values = torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64)  # CPU: gloo
        total = parallel.all_reduce_sum(values)
        return {k: float(v) / self.world_size for k, v in zip(keys, total.tolist())}
