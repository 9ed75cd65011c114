"""The long-tailed subsets shared by CIFAR-LT and digits-LT (Cui et al. 2019; LDAM-DRW's builder).

Class i of K keeps n_i = int(n_max * imbalance^(-i / (K - 1))) images (the exponential profile: class 0 the
largest, class K-1 the smallest, n_0 / n_{K-1} = imbalance); which images are kept is a seeded shuffle
within each class. The shuffle draws the same permutation for every imbalance factor, so the subsets are
nested: the images kept at imbalance 100 are kept at 50, 10 and 1 as well.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from ..errors import DataError


def long_tail_counts(n_max: int, num_classes: int, imbalance: float) -> List[int]:
    """Images per class: n_i = int(n_max * imbalance^(-i / (K - 1)))."""
    if imbalance < 1:
        raise ValueError(f"the imbalance factor must be >= 1 (n_max / n_min, e.g. 100), got {imbalance}")
    return [int(n_max * (1.0 / imbalance) ** (i / (num_classes - 1.0))) for i in range(num_classes)]


def long_tail_indices(
    labels: np.ndarray,
    num_classes: int,
    imbalance: float,
    seed: int = 0,
    n_max: Optional[int] = None,
    what: str = "CIFAR-LT",
) -> np.ndarray:
    """Indices of the long-tailed subset: per class (in label order) the first n_i of a seeded shuffle
    (numpy's legacy RandomState, which is what ``np.random.seed(0); np.random.shuffle`` in LDAM-DRW uses).
    ``n_max`` defaults to the images per class of a balanced ``labels`` (len / K)."""
    labels = np.asarray(labels)
    n_max = int(len(labels) / num_classes) if n_max is None else n_max
    counts = long_tail_counts(n_max, num_classes, imbalance)
    rng = np.random.RandomState(seed)
    keep = []
    for c, n in enumerate(counts):
        idx = np.where(labels == c)[0]
        rng.shuffle(idx)
        if len(idx) < n:
            raise DataError(f"class {c} has {len(idx)} training images, fewer than the {n} {what} needs")
        keep.append(idx[:n])
    return np.concatenate(keep)
