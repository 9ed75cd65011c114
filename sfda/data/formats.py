"""Dataset formats: a config's ``data.format`` names one; it turns the ``data`` section into datasets for the
two stages.

``list`` (the default) reads SHOT-format lists (``data.lists_dir/<domain>.txt``) under the image root.
Other formats (torchvision datasets, CIFAR-LT, ImageFolder trees) register themselves in ``FORMATS`` and
subclass :class:`DatasetFormat`, which gives them the config, their typed ``data.params`` (a ``Params``
dataclass, checked when the config loads) and the data root:

- ``domain(name, train)``: the whole domain with the train (augmenting) or test transform;
- ``source_split(name)``: (train, evaluation) datasets for source training;
- ``num_classes``.
Every dataset returns ``(image, label, index)`` and has a ``labels`` tensor.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Tuple

import torch

from ..errors import DataError
from ..params import Params, build_params, params_class
from ..paths import resolve_path
from ..registry import FORMATS
from .dataset import ImageList
from .lists import read_list, shipped_list
from .transforms import build_transform
from .verify import missing_list_hint


def data_root(cfg) -> Path:
    d = cfg.data
    if d.root:
        return resolve_path(d.root)
    env = os.environ.get("SFDA_DATA")
    if env:
        return Path(env) / (d.dataset_dir or "")
    local = Path("data") / (d.dataset_dir or "")
    if d.dataset_dir and local.is_dir():
        return local
    raise DataError(
        "no image root: set data.root=DIR on the command line or in the config, "
        f"or export SFDA_DATA=DIR (images are then read from $SFDA_DATA/{d.dataset_dir}; "
        f"without SFDA_DATA, ./data/{d.dataset_dir} is used if it exists)"
    )


class DatasetFormat:
    """Base of the registered dataset formats: ``cfg``, the typed ``hparams`` (``data.params``) and ``root``,
    the data root, found on first use (so that configs load and models build without the data). Formats
    whose data torchvision downloads set ``download_fallback``: without data.root or SFDA_DATA they download
    into ./data/<dataset_dir>."""

    download_fallback = False
    num_classes: int
    _root: Optional[Path] = None

    def __init__(self, cfg: Any, hparams: Optional[Params] = None):
        self.cfg = cfg
        self.hparams = hparams if hparams is not None else format_params(type(self), cfg)

    @property
    def root(self) -> Path:
        if self._root is None:
            try:
                self._root = data_root(self.cfg)
            except DataError:
                if not self.download_fallback:
                    raise
                self._root = Path("data") / (self.cfg.data.dataset_dir or "")
        return self._root

    def domain(self, name: str, train: bool) -> Any:
        raise NotImplementedError

    def source_split(self, name: str) -> Tuple[Any, Any]:
        raise NotImplementedError


def format_params(cls: type, cfg: Any) -> Params:
    """The typed ``data.params`` of dataset format ``cls`` (checked by the config loader, with file:line)."""
    return build_params(params_class(cls), dict(cfg.data.get("params") or {}), prefix="data.params.")


def split_indices(n: int, val_fraction: float, seed: int) -> Tuple[list, list]:
    """SHOT's source split: int(0.9 n) training samples, the rest for validation, seeded."""
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=g).tolist()
    n_train = int((1.0 - val_fraction) * n + 1e-9)
    return sorted(perm[:n_train]), sorted(perm[n_train:])


@FORMATS.register("list")
class ListFormat(DatasetFormat):
    """SHOT-format lists: data.lists_dir/<domain>.txt with paths relative to the image root."""

    def __init__(self, cfg: Any, hparams: Optional[Params] = None):
        super().__init__(cfg, hparams)
        self.num_classes = int(cfg.data.num_classes)
        if self.num_classes <= 0:
            raise DataError("data.num_classes must be set (e.g. 65 for Office-Home)")
        self.lists_dir = resolve_path(cfg.data.lists_dir or ".")
        self.tf = build_transform(cfg)

    def list_file(self, name: str) -> Path:
        """``lists_dir/<name>.txt`` (or SHOT's ``<name>_list.txt``), else ``<data root>/lists/<name>.txt``, where
        ``sfda lists make`` writes by default (VisDA-C's train list is made by the user)."""
        if not name:
            raise DataError("no domain given: set data.source (and data.target for adaptation)")
        p = shipped_list(self.lists_dir / f"{name}.txt")
        if not p.exists():
            alt = self.lists_dir / f"{name}_list.txt"  # SHOT's naming
            if alt.exists():
                return alt
            try:
                in_root = self.root / "lists" / f"{name}.txt"
            except DataError:  # no data root configured: report the lists_dir path
                return p
            if in_root.exists():
                return in_root
        return p

    def where(self, name: str) -> str:
        """The file that error messages about ``name``'s images name (with the line of the image)."""
        return str(self.list_file(name))

    def _dataset(self, name: str, entries, train: bool) -> ImageList:
        d = self.cfg.data
        return ImageList(
            entries,
            self.root,
            self.tf.train if train else self.tf.test,
            list_file=self.where(name),
            mode=self.tf.mode,
            pre=self.tf.pre,
            skip_bad=d.skip_bad_images,
            cache_key=self.tf.key if d.cache_images else None,
        )

    def entries(self, name: str):
        f = self.list_file(name)
        if not f.exists():
            try:
                root = str(self.root)
            except DataError:
                root = None
            hint = missing_list_hint(self.cfg.benchmark, name, root)
            if hint:
                raise DataError(f"data list '{f}' not found: {hint}")
        return read_list(f, self.num_classes)

    def domain(self, name: str, train: bool):
        return self._dataset(name, self.entries(name), train)

    def source_split(self, name: str):
        entries = self.entries(name)
        tr, va = split_indices(len(entries), self.cfg.data.val_fraction, self.cfg.seed)
        train = self._dataset(name, [entries[i] for i in tr], True)
        val = self._dataset(name, [entries[i] for i in va], False) if va else self._dataset(name, entries, False)
        return train, val


def build_format(cfg: Any) -> DatasetFormat:
    """The dataset format ``data.format`` of ``cfg`` with its ``data.params``."""
    return FORMATS.get(cfg.data.format, key="data.format")(cfg)
