"""Single-domain datasets with a held-out test split, for supervised training (``method.name: source`` with
``select_best: false``: the test split is the evaluation set and the last epoch is reported).

- ``holdout_lists``: a training list and a test list (``<lists_dir>/<split>.txt``, ``lists_dir`` defaulting to
  ``<data root>/lists``), e.g. the visual-emotion datasets, whose splits users bring themselves.
- ``imagefolder``: torchvision's ImageFolder layout ``ROOT/<split>/<class>/<image>`` (ImageNet-1K's
  ``train/`` and ``val/``), classes in sorted folder order; lists in ``data.lists_dir`` are used instead of
  scanning when they exist.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

from ..errors import ConfigError, DataError
from ..params import Params, param
from ..paths import resolve_path
from ..registry import FORMATS
from .formats import ListFormat
from .lists import IMAGE_EXTENSIONS, Entry, read_list


@FORMATS.register("holdout_lists")
class HoldoutListsFormat(ListFormat):
    """Train and test lists of one dataset (<lists_dir or data root/lists>/<split>.txt); evaluated on the test list."""

    @dataclass
    class Params(Params):
        eval_split: str = param("test", help="name of the evaluation list (<split>.txt)")

    def __init__(self, cfg: Any, hparams: Optional[Params] = None):
        super().__init__(cfg, hparams)
        self._own_lists = bool(cfg.data.lists_dir)

    def list_file(self, name: str) -> Path:
        if not name:
            raise DataError("no split given: set data.source (the training list's name, e.g. train)")
        folder = resolve_path(self.cfg.data.lists_dir) if self._own_lists else self.root / "lists"
        return folder / f"{name}.txt"

    def entries(self, name: str):
        f = self.list_file(name)
        if not f.exists():
            raise DataError(
                f"data list '{f}' not found: {self.cfg.benchmark or 'this dataset'} has no shipped split; write "
                f"{f.parent}/{{train,test}}.txt ('<path relative to {self.root}> <label>' per line, labels 0..{self.num_classes - 1}), "
                f"e.g. with `sfda lists make --root {self.root} --domains train test` from {self.root}/train/<class>/ and "
                f"{self.root}/test/<class>/ folders, or set data.lists_dir=DIR"
            )
        return read_list(f, self.num_classes)

    def source_split(self, name: str):
        return self.domain(name, True), self.domain(self.hparams.eval_split, False)


def scan_split(root: Path, split: str, classes: List[str]) -> List[Entry]:
    """Entries of ROOT/<split>/<class>/<image> (recursively, sorted), labelled by the index in ``classes``."""
    entries: List[Entry] = []
    for label, cname in enumerate(classes):
        cdir = root / split / cname
        if not cdir.is_dir():
            continue
        files = []
        for dirpath, _, names in os.walk(cdir):
            files += [os.path.join(dirpath, n) for n in names if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS]
        for p in sorted(files):
            entries.append(Entry(Path(p).relative_to(root).as_posix(), label, len(entries) + 1))
    return entries


@FORMATS.register("imagefolder")
class ImageFolderFormat(ListFormat):
    """ROOT/<split>/<class>/<image> (ImageNet train/ and val/); classes sorted as torchvision's ImageFolder."""

    @dataclass
    class Params(Params):
        train_split: str = param("train", help="folder whose class folders define the classes")
        eval_split: str = param("val", help="folder of the evaluation split")

    def __init__(self, cfg: Any, hparams: Optional[Params] = None):
        super().__init__(cfg, hparams)
        self._classes: Optional[List[str]] = None

    def classes(self) -> List[str]:
        """Class folders of the training split, sorted (case-sensitive, like torchvision's ImageFolder)."""
        if self._classes is None:
            tdir = self.root / self.hparams.train_split
            if not tdir.is_dir():
                raise DataError(
                    f"'{tdir}' not found: data.format imagefolder expects {self.root}/"
                    f"{self.hparams.train_split}/<class>/<image> (set data.root to the dataset folder)"
                )
            classes = sorted(e.name for e in os.scandir(tdir) if e.is_dir() and not e.name.startswith("."))
            if len(classes) != self.num_classes:
                raise DataError(
                    f"'{tdir}' has {len(classes)} class folders but data.num_classes={self.num_classes}; "
                    "point data.root at the right folder or fix data.num_classes"
                )
            self._classes = classes
        return self._classes

    def list_file(self, name: str) -> Path:
        return (
            resolve_path(self.cfg.data.lists_dir) if self.cfg.data.lists_dir else self.root / "lists"
        ) / f"{name}.txt"

    def entries(self, name: str):
        f = self.list_file(name)
        if f.exists():
            return read_list(f, self.num_classes)
        classes = self.classes()
        sdir = self.root / name
        if not sdir.is_dir():
            raise DataError(f"split folder '{sdir}' not found (expected {sdir}/<class>/<image>)")
        entries = scan_split(self.root, name, classes)
        if not entries:
            flat = any(e.is_file() for e in os.scandir(sdir))
            why = (
                (
                    f"its images are not in class folders; sort them into {sdir}/<class>/ (for ImageNet's val/, "
                    "with the usual valprep.sh script)"
                )
                if flat
                else "its class folders hold no images"
            )
            raise DataError(f"'{sdir}': no images found: {why}")
        return entries

    def where(self, name: str) -> str:
        f = self.list_file(name)
        return str(f if f.exists() else self.root / name)  # the list when there is one, else the split folder

    def source_split(self, name: str):
        if not name:
            raise ConfigError("set data.source to the training split folder (e.g. train)")
        return self.domain(name, True), self.domain(self.hparams.eval_split, False)
