"""The image dataset over a data list: returns ``(image, label, index)``.

Missing files are found before training starts and reported with the list file, line and path; an image
that cannot be decoded is reported the same way when it is read. With ``skip_bad_images`` such images are
dropped (and counted) instead. With ``cache_images`` every image is decoded once, passed through the
deterministic ``pre`` transform, and kept in one shared uint8 array.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError
from .lists import Entry

log = logging.getLogger("sfda")

_CACHE: Dict[Tuple[str, str, str], np.ndarray] = {}


def clear_cache() -> None:
    """Free every cached image array (called when a stage ends)."""
    _CACHE.clear()


def _open(path: Path, mode: str) -> Image.Image:
    with Image.open(path) as im:
        return im.convert(mode)


class ImageList(Dataset):
    def __init__(self, entries: Sequence[Entry], root: os.PathLike, transform: Callable, *, list_file: str = "",
                 mode: str = "RGB", pre: Optional[Callable] = None, skip_bad: bool = False,
                 cache_key: Optional[str] = None):
        self.root = Path(root)
        self.list_file = str(list_file)
        self.mode = mode
        self.pre = pre
        self.transform = transform
        self.skipped: List[Entry] = []
        entries = list(entries)
        kept = []
        for e in entries:
            p = self.root / e.path
            ok = p.is_file()
            if ok and skip_bad:
                try:
                    with Image.open(p) as im:
                        im.verify()
                except Exception:
                    ok = False
            if ok:
                kept.append(e)
            elif skip_bad:
                self.skipped.append(e)
            else:
                raise DataError(self._where(e) + f"image '{p}' not found; check data.root (now '{self.root}') or "
                                "set data.skip_bad_images=true to skip and count missing images")
        if self.skipped:
            first = self.skipped[0]
            log.warning("skipped %d missing or unreadable image(s) from %s (first: line %d, %s)",
                        len(self.skipped), self.list_file, first.line, first.path)
        if not kept:
            raise DataError(f"{self.list_file}: no readable images under '{self.root}'")
        self.entries = kept
        self.labels = torch.tensor([e.label for e in kept], dtype=torch.long)
        self._cache = None
        if cache_key is not None and pre is not None:
            key = (self.list_file, str(self.root), cache_key, hash(tuple(e.line for e in kept)))
            if key not in _CACHE:
                _CACHE[key] = self._decode_all()
            self._cache = _CACHE[key]

    def _where(self, e: Entry) -> str:
        return f"{self.list_file}:{e.line}: " if self.list_file else ""

    def _load(self, e: Entry) -> Image.Image:
        p = self.root / e.path
        try:
            img = _open(p, self.mode)
        except FileNotFoundError:
            raise DataError(self._where(e) + f"image '{p}' not found; check data.root or set "
                            "data.skip_bad_images=true") from None
        except Exception as ex:  # PIL raises several types for corrupt files
            raise DataError(self._where(e) + f"cannot decode image '{p}' ({type(ex).__name__}: {ex}); "
                            "replace the file or set data.skip_bad_images=true") from None
        return self.pre(img) if self.pre is not None else img

    def _decode_all(self) -> np.ndarray:
        first = np.asarray(self._load(self.entries[0]))
        arr = np.empty((len(self.entries),) + first.shape, dtype=np.uint8)

        def work(i):
            a = np.asarray(self._load(self.entries[i]))
            if a.shape != first.shape:
                raise DataError(self._where(self.entries[i]) + "data.cache_images needs a fixed-size 'pre' transform")
            arr[i] = a

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as ex:
            list(ex.map(work, range(len(self.entries))))
        return arr

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int):
        e = self.entries[i]
        if self._cache is not None:
            img = Image.fromarray(self._cache[i], mode=None)
        else:
            img = self._load(e)
        return self.transform(img), e.label, i
