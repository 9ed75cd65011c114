"""Sharding a sampler's order over the ranks of a multi-process run.

:class:`ShardedSampler` takes the order a one-process run draws (plain shuffling, or a class-aware sampler's
draws, from the same seeded generator: the same order on every rank) and deals it out: rank r takes the
positions r, r + W, r + 2W, ... (W = world size). With a per-rank batch of B/W, step t of the ranks together
holds exactly positions t*B .. (t+1)*B - 1, the batch a one-process run trains on at step t.

- training (``pad=True``): the order is padded with its own first positions to a multiple of W, so every
  rank has the same number of samples and of steps (a few samples appear twice in the last global batch);
- evaluation (``pad=False``): no padding, every sample is on exactly one rank; the pass is gathered with
  the dataset indices (:func:`sfda.engine.evaluate.infer`).
"""

from __future__ import annotations

from typing import Iterable, Iterator, List, Optional

from torch.utils.data import Sampler


class ShardedSampler(Sampler[int]):
    def __init__(self, order: Iterable[int], size: int, rank: int, world_size: int, *, pad: bool):
        """``order``: a sampler (or any iterable) giving the one-process order of ``size`` positions."""
        self.order, self.size = order, int(size)
        self.rank, self.world_size, self.pad = int(rank), int(world_size), pad

    def positions(self, order: List[int]) -> List[int]:
        if self.pad and order:
            missing = (-len(order)) % self.world_size
            while missing:
                take = order[:missing]
                order = order + take
                missing -= len(take)
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.positions(list(iter(self.order))))

    def __len__(self) -> int:
        if self.pad:
            return -(-self.size // self.world_size)
        return len(range(self.rank, self.size, self.world_size))


def per_rank_batch(batch_size: int, world_size: int, key: Optional[str] = None) -> int:
    """The per-rank share of a global batch; with ``key`` (a training batch) it must divide evenly."""
    if key is not None and batch_size % world_size:
        from ..errors import ConfigError

        raise ConfigError(
            f"{key}={batch_size} is the global batch, split evenly over the {world_size} processes; "
            f"set {key} to a multiple of {world_size} (or run another number of processes)"
        )
    return max(1, -(-batch_size // world_size))
