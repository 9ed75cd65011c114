"""The image dataset over a data list: returns ``(image, label, index)``.

Missing files are found before training starts and reported with the list file, line and path; an image
that cannot be decoded is reported the same way when it is read. With ``skip_bad_images`` such images are
dropped (and counted) instead: a file that is missing or fails a quick check is dropped when the list is
read; a file that passes the check but fails to decode later raises :class:`UndecodableImage`, and the run
(:mod:`sfda.engine.bad_images`) finds every such file, drops it and starts the stage again. With
``cache_images`` every image is decoded once, passed through the deterministic ``pre`` transform, and kept
in one shared uint8 array (an image that fails to decode there is dropped at once); a transform marked
deterministic (:func:`sfda.data.transforms.deterministic`) is then applied once per image and its tensor kept,
up to ``TENSOR_CACHE_BYTES`` per dataset.
"""

from __future__ import annotations

import logging
import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError
from .lists import Entry

log = logging.getLogger("sfda")

_CACHE: Dict[Tuple[str, str, str], np.ndarray] = {}
_UNDECODABLE: Set[str] = set()  # files found undecodable in this process (or listed in the run folder)
_LIVE: weakref.WeakSet[ImageList] = weakref.WeakSet()  # the lists with skip_bad built since the last clear
TENSOR_CACHE_BYTES = 1 << 30  # float32 tensors of a deterministic transform, kept when they fit (digits: 12 MB)


class UndecodableImage(DataError):
    """An image passed the quick check when its list was read but fails to decode (``skip_bad_images``)."""


def clear_cache() -> None:
    """Free every cached image array and forget the lists built so far (called when a stage ends)."""
    _CACHE.clear()
    _LIVE.clear()


def exclude(paths) -> None:
    """Treat these files as undecodable: lists read from now on with ``skip_bad`` drop them."""
    _UNDECODABLE.update(str(p) for p in paths)


def scan_undecodable() -> List[Tuple[str, int, str]]:
    """Fully decode every image of the live ``skip_bad`` lists; return (list file, line, path) of each
    one that fails, and remember those files (see :func:`exclude`)."""
    found = []
    for ds in list(_LIVE):
        for e in ds.entries:
            p = ds.root / e.path
            try:
                _open(p, ds.mode)
            except Exception:
                found.append((ds.list_file, e.line, str(p)))
    exclude(p for _, _, p in found)
    return found


def _open(path: Path, mode: str) -> Image.Image:
    with Image.open(path) as im:
        return im.convert(mode)


class ImageList(Dataset):
    def __init__(
        self,
        entries: Sequence[Entry],
        root: os.PathLike,
        transform: Callable,
        *,
        list_file: str = "",
        mode: str = "RGB",
        pre: Optional[Callable] = None,
        skip_bad: bool = False,
        cache_key: Optional[str] = None,
    ):
        self.root = Path(root)
        self.list_file = str(list_file)
        self.mode = mode
        self.pre = pre
        self.transform = transform
        self.skip_bad = skip_bad
        self.skipped: List[Entry] = []
        entries = list(entries)
        kept = []
        for e in entries:
            p = self.root / e.path
            ok = p.is_file() and not (skip_bad and str(p) in _UNDECODABLE)
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
                raise DataError(
                    self._where(e) + f"image '{p}' not found; check data.root (now '{self.root}') or "
                    "set data.skip_bad_images=true to skip and count missing images"
                )
        if self.skipped:
            first = self.skipped[0]
            log.warning(
                "skipped %d missing or unreadable image(s) from %s (first: line %d, %s)",
                len(self.skipped),
                self.list_file,
                first.line,
                first.path,
            )
        self._keep(kept)
        self._cache = None
        if cache_key is not None and pre is not None:
            key = (self.list_file, str(self.root), cache_key, hash(tuple(e.line for e in kept)))
            if key not in _CACHE:
                _CACHE[key] = self._decode_all()
            self._cache = _CACHE[key]
        if skip_bad:
            _LIVE.add(self)

    def _keep(self, kept: List[Entry]) -> None:
        if not kept:
            raise DataError(f"{self.list_file}: no readable images under '{self.root}'")
        self.entries = kept
        self.labels = torch.tensor([e.label for e in kept], dtype=torch.long)
        self._tensors: List[Optional[torch.Tensor]] = []  # outputs of `_tensors_for`, filled on first use
        self._tensors_for: Optional[Callable] = None

    def _where(self, e: Entry) -> str:
        return f"{self.list_file}:{e.line}: " if self.list_file else ""

    def _load(self, e: Entry) -> Image.Image:
        p = self.root / e.path
        try:
            img = _open(p, self.mode)
        except FileNotFoundError:
            if self.skip_bad:  # removed after the list was read: dropped like an undecodable file
                raise UndecodableImage(self._where(e) + f"image '{p}' not found; check data.root") from None
            raise DataError(
                self._where(e) + f"image '{p}' not found; check data.root or set data.skip_bad_images=true"
            ) from None
        except Exception as ex:  # PIL raises several types for corrupt files
            cause = f"cannot decode image '{p}' ({type(ex).__name__}: {' '.join(str(ex).split())})"
            if self.skip_bad:  # a run drops it and starts again (engine/bad_images.py); elsewhere: one line
                raise UndecodableImage(self._where(e) + cause + "; replace or remove the file") from None
            raise DataError(self._where(e) + cause + "; replace the file or set data.skip_bad_images=true") from None
        return self.pre(img) if self.pre is not None else img

    def _decode_all(self) -> np.ndarray:
        shape: Optional[tuple] = None
        for e in self.entries:  # the first decodable image gives the array's shape
            try:
                shape = np.asarray(self._load(e)).shape
                break
            except UndecodableImage:
                continue
        if shape is None:
            raise DataError(f"{self.list_file}: no image under '{self.root}' can be decoded")
        arr = np.empty((len(self.entries),) + shape, dtype=np.uint8)

        def work(i) -> bool:
            try:
                a = np.asarray(self._load(self.entries[i]))
            except UndecodableImage:  # only with skip_bad
                return False
            if a.shape != shape:
                raise DataError(self._where(self.entries[i]) + "data.cache_images needs a fixed-size 'pre' transform")
            arr[i] = a
            return True

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as ex:
            ok = list(ex.map(work, range(len(self.entries))))
        if all(ok):
            return arr
        bad = [e for e, good in zip(self.entries, ok) if not good]  # dropped before anything trained on the list
        exclude(str(self.root / e.path) for e in bad)
        self.skipped += bad
        log.warning(
            "skipped %d image(s) of %s that cannot be decoded (first: line %d, %s)",
            len(bad),
            self.list_file,
            bad[0].line,
            bad[0].path,
        )
        self._keep([e for e, good in zip(self.entries, ok) if good])
        return arr[np.flatnonzero(ok)]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int):
        e = self.entries[i]
        if self._cache is None:
            return self.transform(self._load(e)), e.label, i
        tf = self.transform
        if not getattr(tf, "sfda_deterministic", False) or 4 * self._cache.nbytes > TENSOR_CACHE_BYTES:
            return tf(Image.fromarray(self._cache[i], mode=None)), e.label, i
        if self._tensors_for is not tf:  # first use, or the transform was replaced
            self._tensors, self._tensors_for = [None] * len(self.entries), tf
        x = self._tensors[i]
        if x is None:
            x = self._tensors[i] = tf(Image.fromarray(self._cache[i], mode=None))
        return x, e.label, i
