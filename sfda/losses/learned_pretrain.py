"""Pretraining the EDL-style loss (:mod:`sfda.losses.learned`) by an evolution strategy, without data.

A (mu + lambda) evolution strategy over the network's weights: each generation draws fresh synthetic pairs
(:mod:`sfda.losses.learned_pairs`; the same pairs for every candidate, so the noisy fitness compares like
with like), makes ``population`` children from the ``parents`` best (round robin), re-evaluates parents
and children, and keeps the best ``parents``. Mutation: ``child = parent + sigma * m`` where ``m`` comes
from a logistic map ``x <- r x (1 - x)`` (r near 4, one chaotic orbit per weight of each child) scaled to
zero mean and unit variance with the orbit's own moments (at r = 4 exactly its invariant density has mean 1/2
and variance 1/8), or, as the ablation, from a standard Gaussian. ``sigma`` follows the 1/5 success rule.

Fitness (sfda's choices): ranking consistency, the fraction of pairs whose losses are ordered as the pairs
are (worse > better; a difference within 1e-5 of the values' size counts as a tie, worth 1/2, since it
gives no usable ordering in float32), averaged over the five regimes of the mixture so that the rare
critical regimes weigh as much as the common ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Literal, Optional

import numpy as np
import torch

from ..params import ParamError, Params, param
from .learned import FILE_FORMAT, loss_features, loss_values, num_weights
from .learned_pairs import REGIMES, PairBlock, sample_pairs

TIE_TOLERANCE = 1e-5


@dataclass
class PretrainParams(Params):
    seed: int = param(0, help="seed of the pairs, the initial population and the mutations")
    generations: int = param(150, low=1, help="generations of the evolution strategy")
    population: int = param(32, low=2, help="children per generation (lambda)")
    parents: int = param(8, low=1, help="parents kept per generation (mu)")
    pairs: int = param(4096, low=64, help="fresh synthetic pairs per generation")
    monitor_pairs: int = param(4096, low=64, help="fixed pairs on which the best network is tracked and chosen")
    hidden: int = param(16, low=1, high=256, help="hidden units of the loss network")
    mutation: Literal["chaotic", "gaussian"] = param("chaotic", help="logistic-map steps, or Gaussian (ablation)")
    logistic_r: float = param(3.99, low=3.57, high=4.0, help="logistic map parameter (chaotic for r > 3.57)")
    sigma: float = param(0.3, low=0.0, low_open=True, help="initial mutation step")
    init_scale: float = param(1.0, low=0.0, low_open=True, help="std of the initial random weights")
    k_min: int = param(2, low=2, help="fewest classes of a synthetic prediction")
    k_max: int = param(100, low=2, help="most classes of a synthetic prediction")

    def check(self) -> None:
        if self.parents > self.population:
            raise ParamError("parents", f"must be at most population ({self.population}), got {self.parents}")
        if self.k_min > self.k_max:
            raise ParamError("k_min", f"must be at most k_max ({self.k_max}), got {self.k_min}")


def orbit_moments(r: float, steps: int = 200_000) -> tuple:
    """Mean and standard deviation of the logistic map's orbit (its invariant density) for ``r``."""
    x, values = 0.3141592653589793, np.empty(steps)
    for i in range(steps + 1000):
        x = r * x * (1.0 - x)
        if i >= 1000:
            values[i - 1000] = x
    return float(values.mean()), float(values.std())


class LogisticMutation:
    """Mutation steps from logistic-map orbits, one per coordinate, seeded from ``rng``, standardised with the
    orbit's mean and standard deviation for ``r`` (for r = 4 exactly: 1/2 and sqrt(1/8))."""

    def __init__(self, rng: np.random.Generator, shape, r: float):
        self.rng, self.r = rng, r
        self.state = rng.uniform(0.05, 0.95, size=shape)
        self.mean, self.std = orbit_moments(r)

    def draw(self) -> np.ndarray:
        x = self.r * self.state * (1.0 - self.state)
        stuck = (x < 1e-9) | (x > 1.0 - 1e-9) | (np.abs(x - self.state) < 1e-12)  # fixed points, float collapse
        if stuck.any():
            x[stuck] = self.rng.uniform(0.05, 0.95, size=int(stuck.sum()))
        self.state = x
        return (x - self.mean) / self.std


class GaussianMutation:
    def __init__(self, rng: np.random.Generator, shape):
        self.rng, self.shape = rng, shape

    def draw(self) -> np.ndarray:
        return self.rng.standard_normal(self.shape)


def block_features(blocks: List[PairBlock]) -> Dict[str, torch.Tensor]:
    """Features of every pair's two predictions, concatenated over the blocks."""
    return {
        "better": torch.cat([loss_features(b.better, b.targets) for b in blocks]),
        "worse": torch.cat([loss_features(b.worse, b.targets) for b in blocks]),
        "regime": torch.cat([b.regime for b in blocks]),
    }


def consistency(better: torch.Tensor, worse: torch.Tensor, regime: torch.Tensor) -> torch.Tensor:
    """Regime-averaged ranking consistency [P] of losses [P, n] of the better and worse predictions."""
    diff = worse - better
    tolerance = TIE_TOLERANCE * (1.0 + torch.maximum(better.abs(), worse.abs()))
    credit = (diff > tolerance).float() + 0.5 * (diff.abs() <= tolerance).float()
    per_regime = [credit[:, regime == r].mean(dim=1) for r in range(len(REGIMES)) if bool((regime == r).any())]
    return torch.stack(per_regime, dim=1).mean(dim=1)


def fitness(theta: np.ndarray, feats: Dict[str, torch.Tensor], hidden: int) -> np.ndarray:
    weights = torch.from_numpy(theta).float()
    with torch.no_grad():
        return (
            consistency(
                loss_values(weights, feats["better"], hidden),
                loss_values(weights, feats["worse"], hidden),
                feats["regime"],
            )
            .double()
            .numpy()
        )


def pretrain(hp: PretrainParams, on_generation: Optional[Callable[[int, Dict[str, float]], None]] = None) -> dict:
    """Run the evolution strategy; the record that ``sfda loss pretrain`` saves (weights, settings, history)."""
    streams = np.random.SeedSequence(hp.seed).spawn(4)
    pair_rng, init_rng, mutation_rng, monitor_rng = (np.random.default_rng(s) for s in streams)
    dim = num_weights(hp.hidden)
    shape = (hp.population, dim)
    mutation = (
        LogisticMutation(mutation_rng, shape, hp.logistic_r)
        if hp.mutation == "chaotic"
        else GaussianMutation(mutation_rng, shape)
    )
    monitor = block_features(sample_pairs(monitor_rng, hp.monitor_pairs, hp.k_min, hp.k_max))
    candidates = init_rng.normal(0.0, hp.init_scale, size=shape)
    parents: Optional[np.ndarray] = None
    sigma = hp.sigma
    history: Dict[str, List[float]] = {"best": [], "mean": [], "monitor": [], "sigma": []}
    for generation in range(hp.generations):
        feats = block_features(sample_pairs(pair_rng, hp.pairs, hp.k_min, hp.k_max))
        if parents is not None:
            lineage = np.arange(hp.population) % len(parents)
            children = parents[lineage] + sigma * mutation.draw()
            candidates = np.concatenate([parents, children])
        scores = fitness(candidates, feats, hp.hidden)
        if parents is not None:
            success = float(np.mean(scores[len(parents) :] > scores[lineage]))
            sigma = float(np.clip(sigma * math.exp(0.6 * (success - 0.2)), 1e-4, 10.0))
        order = np.argsort(-scores, kind="stable")[: hp.parents]
        parents = candidates[order]
        stats = {
            "best": float(scores[order[0]]),
            "mean": float(scores.mean()),
            "monitor": float(fitness(parents[:1], monitor, hp.hidden)[0]),
            "sigma": sigma,
        }
        for key, value in stats.items():
            history[key].append(value)
        if on_generation is not None:
            on_generation(generation, stats)
    assert parents is not None
    final = fitness(parents, monitor, hp.hidden)
    best = int(np.argmax(final))
    return {
        "format": FILE_FORMAT,
        "version": 1,
        "kind": "EDL-style learned loss (sfda's design)",
        "hidden": hp.hidden,
        "theta": torch.from_numpy(parents[best : best + 1]).float(),
        "settings": hp.to_dict(),
        "monitor_fitness": float(final[best]),
        "history": history,
        "torch": str(torch.__version__),
    }
