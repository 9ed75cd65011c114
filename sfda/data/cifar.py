"""CIFAR-10/100 and the long-tailed CIFAR-LT-10/100 (single-domain supervised training).

The data root (``data.root``, or ``$SFDA_DATA/cifar``, or ``./data/cifar``) holds torchvision's layout:
``cifar-10-batches-py/`` and ``cifar-100-python/``. Missing data is downloaded through torchvision
(``data.params.download: true``, the default); offline, the error names the archive to fetch and where to
extract it. The files are read directly (python pickles), so any copy with that layout works.

Splits (``data.source`` / ``domain(name)``): ``train`` and ``test``. ``source_split(name)`` gives the training
set with the training transform and the **test split** as the evaluation set (the paper reports test
accuracy; there is no validation split).

CIFAR-LT (Cui et al. 2019; LDAM-DRW's builder): class i of K keeps n_i = int(n_max * imb^(-i/(K-1)))
training images, n_max = images per class of the full set (5000 / 500); which images are kept is a seeded
shuffle within each class (``subset_seed``, 0 as in LDAM-DRW, fixed across training seeds). The test set
stays balanced. The subset code is :mod:`sfda.data.long_tail`, shared with the digits-LT benchmark.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Literal, Optional, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from ..params import Params, param
from ..registry import FORMATS
from .formats import DatasetFormat
from .long_tail import long_tail_counts, long_tail_indices  # noqa: F401  (long_tail_counts: re-exported)
from .transforms import build_transform

DOWNLOAD_HELP = "download through torchvision when the files are missing (false: never use the network)"

CIFAR = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "label_key": b"labels",
        "classes": 10,
        "tv": "CIFAR10",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "label_key": b"fine_labels",
        "classes": 100,
        "tv": "CIFAR100",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    },
}
SPLITS = ("train", "test")
_LOADED: Dict[Tuple[str, str, str], Tuple[np.ndarray, np.ndarray]] = {}


def _read_batch(path: Path, label_key: bytes) -> Tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        data = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(d[label_key], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError) as e:
        raise DataError(
            f"cannot read CIFAR file '{path}' ({type(e).__name__}: {e}); delete the folder "
            f"'{path.parent}' and let it download again, or replace it with a good copy"
        ) from None
    if len(data) != len(labels):
        raise DataError(f"CIFAR file '{path}': {len(data)} images but {len(labels)} labels; replace the file")
    return np.ascontiguousarray(data), labels


def ensure_cifar(root: Path, name: str, download: bool) -> Path:
    """The extracted CIFAR folder under ``root``; downloads it through torchvision if allowed."""
    spec = CIFAR[name]
    folder = root / spec["folder"]
    needed = spec["train"] + spec["test"]
    if all((folder / f).is_file() for f in needed):
        return folder
    archive = spec["url"].rsplit("/", 1)[1]
    fetch = f"download {spec['url']} and extract it into '{root}' (giving '{folder}')"
    if not download:
        raise DataError(
            f"{name} not found: '{folder}' is missing or incomplete; {fetch}, "
            "or set data.params.download=true on a machine with internet"
        )
    try:
        import torchvision.datasets as D

        root.mkdir(parents=True, exist_ok=True)
        getattr(D, spec["tv"])(str(root), train=True, download=True)
    except Exception as e:  # URLError, HTTPError, socket/SSL errors, checksum errors
        raise DataError(
            f"could not download {name} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            f"on a machine with internet {fetch} ({archive}), or point data.root at a folder that has it"
        ) from None
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{name}: the download did not produce '{folder / missing[0]}'; {fetch}")
    return folder


def load_cifar(root: Path, name: str, split: str, download: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """(images [N, 32, 32, 3] uint8, labels [N] int64) of one split, read once per process."""
    key = (str(Path(root).resolve()), name, split)
    if key not in _LOADED:
        folder = ensure_cifar(Path(root), name, download)
        spec = CIFAR[name]
        parts = [_read_batch(folder / f, spec["label_key"]) for f in spec[split]]
        data = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        if labels.min() < 0 or labels.max() >= spec["classes"]:
            raise DataError(
                f"{folder}: labels outside [0, {spec['classes']}) in the {split} split; is this really {name}?"
            )
        _LOADED[key] = (data, labels)
    return _LOADED[key]


class ArrayImages(Dataset):
    """In-memory uint8 images -> (image, label, index); ``labels`` is a LongTensor."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform, pre=None, mode: str = "RGB"):
        self.images, self.transform, self.pre, self.mode = images, transform, pre, mode
        self.labels = torch.as_tensor(labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i])
        if img.mode != self.mode:
            img = img.convert(self.mode)
        if self.pre is not None:
            img = self.pre(img)
        return self.transform(img), int(self.labels[i]), i


class _CifarBase(DatasetFormat):
    """Shared code of the CIFAR formats: splits 'train' / 'test', the test split as the evaluation set."""

    fmt = ""

    @dataclass
    class Params(Params):
        download: bool = param(True, help=DOWNLOAD_HELP)

    def __init__(self, cfg: Any, hparams: Optional[Params] = None):
        super().__init__(cfg, hparams)
        self.dataset = self._dataset_name()
        self.num_classes = CIFAR[self.dataset]["classes"]
        if int(cfg.data.num_classes) != self.num_classes:
            raise ConfigError(
                f"data.num_classes={cfg.data.num_classes} but {self.dataset} has {self.num_classes} classes; "
                f"set data.num_classes={self.num_classes}"
            )
        self.tf = build_transform(cfg)

    def _dataset_name(self) -> str:
        return self.fmt

    def _arrays(self, split: str) -> Tuple[np.ndarray, np.ndarray]:
        return load_cifar(self.root, self.dataset, split, self.hparams.download)

    def _split(self, name: str) -> Tuple[np.ndarray, np.ndarray]:
        if name not in SPLITS:
            raise DataError(f"{self.fmt} has the splits 'train' and 'test', not '{name}' (set data.source=train)")
        return self._arrays(name)

    def domain(self, name: str, train: bool):
        x, y = self._split(name)
        return ArrayImages(x, y, self.tf.train if train else self.tf.test, self.tf.pre, self.tf.mode)

    def source_split(self, name: str):
        if name != "train":
            raise DataError(
                f"{self.fmt}: data.source must be 'train' (the evaluation set is the test split), got '{name}'"
            )
        return self.domain("train", True), self.domain("test", False)


@FORMATS.register("cifar10")
class Cifar10Format(_CifarBase):
    """CIFAR-10 (torchvision download; splits train / test, evaluated on test)."""

    fmt = "cifar10"


@FORMATS.register("cifar100")
class Cifar100Format(_CifarBase):
    """CIFAR-100 (torchvision download; splits train / test, evaluated on test)."""

    fmt = "cifar100"


@FORMATS.register("cifar_lt")
class CifarLTFormat(_CifarBase):
    """CIFAR-LT-10/100: exponentially imbalanced training set (data.params.imbalance), balanced test set."""

    fmt = "cifar_lt"

    @dataclass
    class Params(Params):
        dataset: Literal["cifar10", "cifar100"] = param("cifar10", help="the full set the long tail is cut from")
        imbalance: float = param(100.0, low=1.0, help="n_max / n_min: images of the largest over the smallest class")
        subset_seed: int = param(0, low=0, help="seed of the per-class shuffle choosing the kept images")
        download: bool = param(True, help=DOWNLOAD_HELP)

    def _dataset_name(self) -> str:
        return self.hparams.dataset

    def _split(self, name: str):
        x, y = super()._split(name)
        if name == "train":
            keep = long_tail_indices(y, self.num_classes, self.hparams.imbalance, self.hparams.subset_seed)
            return x[keep], y[keep]
        return x, y
