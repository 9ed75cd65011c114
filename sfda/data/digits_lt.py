"""digits-LT: the long-tailed supervised benchmark cut from MNIST-5k (the NS paper's Table V at CPU size).

MNIST-5k (OpenCV's ``digits.png``, 500 images per class, built by ``sfda data digits-offline``) is split once:

- ``test``: a fixed, class-balanced test split of 100 images per class (a seeded shuffle within each class,
  ``TEST_SEED``), the same for every training seed and every imbalance factor;
- ``train_imb<k>``: from the remaining 400 images per class, the long-tailed training set of imbalance k
  (n_i = int(400 * k^(-i/9)), class 0 the largest; :mod:`sfda.data.long_tail`, the CIFAR-LT construction,
  subset seed ``SUBSET_SEED``), for k in 1 (the balanced set), 10, 50 and 100. The sets are nested.
- ``uci``: UCI digits (scikit-learn, 1797 images), a second, cross-dataset test set.

Only lists are written (SHOT format, paths relative to the digits-offline image root); the images are those
of ``sfda data digits-offline``. The lists are shipped in ``data_lists/digits-lt`` and the configs read them
from there; ``build_lists`` regenerates them from ``data_lists/digits-offline/mnist5k.txt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from ..errors import DataError
from ..paths import LISTS_DIR
from .lists import Entry, read_list, write_list
from .long_tail import long_tail_indices

NUM_CLASSES = 10
TEST_PER_CLASS = 100
N_MAX = 400
IMBALANCES = (1, 10, 50, 100)
TEST_SEED = 0
SUBSET_SEED = 0
SHIPPED = LISTS_DIR / "digits-lt"
SOURCE_LISTS = LISTS_DIR / "digits-offline"
LIST_FILES = tuple(f"{n}.txt" for n in ("test", *(f"train_imb{k}" for k in IMBALANCES), "uci"))


def train_name(imbalance: int) -> str:
    return f"train_imb{imbalance}"


def split_test(labels: np.ndarray, per_class: int = TEST_PER_CLASS, seed: int = TEST_SEED):
    """(test indices, pool indices): per class, the first ``per_class`` of a seeded shuffle are the test split."""
    rng = np.random.RandomState(seed)
    test, pool = [], []
    for c in range(NUM_CLASSES):
        idx = np.where(labels == c)[0]
        if len(idx) <= per_class:
            raise DataError(
                f"MNIST-5k class {c} has {len(idx)} images, not more than the {per_class} of the test split"
            )
        rng.shuffle(idx)
        test.append(np.sort(idx[:per_class]))
        pool.append(np.sort(idx[per_class:]))
    return np.concatenate(test), np.concatenate(pool)


def make_lists(
    mnist: Sequence[Entry],
    imbalances: Sequence[int] = IMBALANCES,
    test_per_class: int = TEST_PER_CLASS,
    n_max: int = N_MAX,
) -> Dict[str, List[Entry]]:
    """{list name: entries} of the benchmark: ``test`` and ``train_imb<k>`` for each k (label order)."""
    labels = np.array([e.label for e in mnist])
    test, pool = split_test(labels, test_per_class)
    lists = {"test": [mnist[i] for i in test]}
    for imb in imbalances:
        keep = pool[long_tail_indices(labels[pool], NUM_CLASSES, float(imb), SUBSET_SEED, n_max, "digits-LT")]
        lists[train_name(imb)] = [mnist[i] for i in sorted(keep, key=lambda i: (labels[i], i))]
    return lists


def build_lists(out: Path, source_lists: Path = SOURCE_LISTS, log=print) -> Path:
    """Write ``out/{test,train_imb1,train_imb10,train_imb50,train_imb100,uci}.txt``."""
    mnist = read_list(source_lists / "mnist5k.txt", NUM_CLASSES)
    for name, entries in make_lists(mnist).items():
        write_list(entries, out / f"{name}.txt")
        counts = np.bincount([e.label for e in entries], minlength=NUM_CLASSES).tolist()
        log(f"{name}: {len(entries)} images, per class {counts}")
    uci = read_list(source_lists / "uci.txt", NUM_CLASSES)
    write_list(uci, out / "uci.txt")
    log(f"uci: {len(uci)} images (cross-dataset test set)")
    return out
