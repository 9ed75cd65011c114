"""Synthetic (prediction, label) pairs for pretraining the EDL-style loss: no real data, any K.

Each pair holds two predictions of the same K and label, ``better`` and ``worse``, where ``worse`` is more
erroneous. "More erroneous" (sfda's definition; EDL's is not public) is a partial order on which two proper
scoring rules agree: ``worse`` has a higher log score (-log p_y, i.e. cross-entropy) AND a higher quadratic
score (Brier, sum_k (p_k - y_k)^2), one of them strictly. Pairs are built three ways:

- ``lower_true``: a fraction of p_y moves to one other class (both scores rise);
- ``sharpen``: a fraction of one wrong class's mass moves to the strongest wrong class, p_y unchanged
  (CE is tied, Brier rises: the wrong mass is more concentrated, a more confident mistake; K >= 3);
- ``independent``: two independent draws, kept when both scores order them the same way.

Base predictions come from a mixture over five regimes that stresses where losses differ: near-uniform,
confident right, confident wrong, near ties between the label and one other class, and generic
predictions of random temperature. K is log-uniform in [k_min, k_max]; each block of pairs has one K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np
import torch

REGIMES = ("near_uniform", "confident_right", "confident_wrong", "near_tie", "generic")
KINDS = ("lower_true", "sharpen", "independent")


@dataclass
class PairBlock:
    num_classes: int
    better: torch.Tensor  # [n, K] float32 logits of the less erroneous prediction
    worse: torch.Tensor  # [n, K] float32 logits of the more erroneous one
    targets: torch.Tensor  # [n] labels
    regime: torch.Tensor  # [n] index into REGIMES
    kind: torch.Tensor  # [n] index into KINDS


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _other_class(rng: np.random.Generator, targets: np.ndarray, k: int) -> np.ndarray:
    return (targets + rng.integers(1, k, size=targets.shape)) % k


def base_predictions(rng: np.random.Generator, regime: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Probabilities [n, k] (float64) drawn from each sample's regime."""
    n = len(targets)
    rows = np.arange(n)
    z = rng.standard_normal((n, k))
    z *= np.where(regime == 0, rng.uniform(0.0, 0.5, n), 1.0)[:, None]  # near-uniform
    z *= np.where(regime == 4, np.exp(rng.uniform(np.log(0.3), np.log(5.0), n)), 1.0)[:, None]  # generic
    other = _other_class(rng, targets, k)
    boost = rng.uniform(3.0, 15.0, n)
    z[rows, targets] += np.where(regime == 1, boost, 0.0)  # confident right
    z[rows, other] += np.where(regime == 2, boost, 0.0)  # confident wrong
    tie = regime == 3  # near tie
    level = rng.uniform(2.0, 10.0, n)
    z[rows[tie], targets[tie]] = level[tie] + 0.1 * rng.standard_normal(tie.sum())
    z[rows[tie], other[tie]] = level[tie] + 0.1 * rng.standard_normal(tie.sum())
    return _softmax(z)


def scores(probs: np.ndarray, targets: np.ndarray):
    """(log score -log p_y, Brier score) of float64 probabilities."""
    rows = np.arange(len(targets))
    onehot = np.zeros_like(probs)
    onehot[rows, targets] = 1.0
    return -np.log(probs[rows, targets]), ((probs - onehot) ** 2).sum(axis=1)


def _block(rng: np.random.Generator, n: int, k: int) -> PairBlock:
    rows = np.arange(n)
    targets = rng.integers(0, k, size=n)
    regime = rng.integers(0, len(REGIMES), size=n)
    kind = rng.integers(0, len(KINDS) if k > 2 else 1, size=n)
    kind = np.where((kind == 1) & (k < 3), 0, kind)
    better = base_predictions(rng, regime, targets, k)
    worse = better.copy()
    fraction = np.exp(rng.uniform(np.log(1e-3), np.log(0.9), n))
    # lower_true: a fraction of p_y to a random other class
    other = _other_class(rng, targets, k)
    moved = fraction * better[rows, targets]
    lower = kind == 0
    worse[rows[lower], targets[lower]] -= moved[lower]
    worse[rows[lower], other[lower]] += moved[lower]
    # sharpen: a fraction of a weaker wrong class's mass to the strongest wrong class
    sharpen = kind == 1
    if sharpen.any():
        masked = np.where(np.arange(k)[None, :] == targets[:, None], -1.0, better)
        top = masked.argmax(axis=1)
        donor = (top + rng.integers(1, k, size=n)) % k
        donor = np.where(donor == targets, (donor + 1) % k, donor)
        donor = np.where(donor == top, (donor + 1) % k, donor)
        moved = fraction * better[rows, donor]
        worse[rows[sharpen], donor[sharpen]] -= moved[sharpen]
        worse[rows[sharpen], top[sharpen]] += moved[sharpen]
    # independent: a second draw of the same regime and label, ordered by the two scores
    indep = kind == 2
    if indep.any():
        worse[indep] = base_predictions(rng, regime[indep], targets[indep], k)
    ce_b, brier_b = scores(better, targets)
    ce_w, brier_w = scores(worse, targets)
    swap = indep & (ce_w < ce_b) & (brier_w < brier_b)
    better[swap], worse[swap] = worse[swap], better[swap].copy()
    d_ce, d_brier = np.abs(ce_w - ce_b), np.abs(brier_w - brier_b)
    agree = ~indep | (np.sign(ce_w - ce_b) == np.sign(brier_w - brier_b))
    measurable = (d_brier >= 1e-6) | (d_ce >= 1e-4)
    keep = agree & measurable & (~indep | ((d_ce >= 1e-3) & (d_brier >= 1e-6)))
    keep &= (worse > 0).all(axis=1) & (better > 0).all(axis=1)

    def logits(p: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.log(p[keep])).float()

    return PairBlock(
        k,
        logits(better),
        logits(worse),
        torch.from_numpy(targets[keep]),
        torch.from_numpy(regime[keep]),
        torch.from_numpy(kind[keep]),
    )


def sample_pairs(
    rng: np.random.Generator, num_pairs: int, k_min: int = 2, k_max: int = 100, block_size: int = 256
) -> List[PairBlock]:
    """About ``num_pairs`` pairs (a few are dropped as unordered or unmeasurable), in blocks of one K each."""
    blocks = []
    for start in range(0, num_pairs, block_size):
        k = int(round(np.exp(rng.uniform(np.log(k_min), np.log(k_max + 0.5)))))
        blocks.append(_block(rng, min(block_size, num_pairs - start), max(k_min, min(k, k_max))))
    return blocks
