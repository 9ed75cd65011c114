"""SHOT-format data lists: one ``relative/path label`` per line.

Reading reports every problem with the list file and line. ``make_lists`` regenerates lists from a
class-folder tree with the benchmarks' ordering rules; ``verify`` checks a user's copy of a dataset.
Large shipped lists (DomainNet-126, VisDA-C validation) are stored gzip-compressed as ``<name>.txt.gz``;
``<name>.txt`` finds them (``shipped_list``), so configs and commands name lists the same either way.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the data root
    label: int
    line: int  # 1-based line number in the list file


def shipped_list(list_file: os.PathLike) -> Path:
    """``list_file``, or its compressed copy ``<list_file>.gz`` when only that exists."""
    p = Path(list_file)
    gz = p.with_name(p.name + ".gz")
    return gz if not p.exists() and gz.exists() else p


def read_list(list_file: os.PathLike, num_classes: Optional[int] = None) -> List[Entry]:
    """Parse a list (plain or ``.gz``). Paths may contain spaces (the label is the last field)."""
    list_file = shipped_list(list_file)
    try:
        raw = list_file.read_bytes()
        raw = gzip.decompress(raw) if list_file.suffix == ".gz" else raw
        text = raw.decode("utf-8-sig")  # a UTF-8 byte-order mark (Windows editors) is dropped
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{list_file}:{line}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); save the list as UTF-8"
        ) from None
    except FileNotFoundError:
        raise DataError(
            f"data list '{list_file}' not found; check data.lists_dir and data.source/target, "
            f"or make it with `sfda lists make --root DIR`"
        ) from None
    entries: List[Entry] = []
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise DataError(f"{list_file}:{i}: expected '<path> <label>', got '{line}'")
        path, lab = parts
        try:
            label = int(lab)
        except ValueError:
            raise DataError(f"{list_file}:{i}: label '{lab}' is not an integer (expected '<path> <label>')") from None
        if label < 0 or (num_classes is not None and label >= num_classes):
            rng = f"[0, {num_classes})" if num_classes is not None else ">= 0"
            raise DataError(
                f"{list_file}:{i}: label {label} is outside {rng} "
                f"(data.num_classes={num_classes}); fix the list or data.num_classes"
            )
        entries.append(Entry(path, label, i))
    if not entries:
        raise DataError(f"data list '{list_file}' has no entries")
    return entries


def write_list(entries: Sequence[Entry] | Sequence[tuple], out: os.PathLike) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{e.path} {e.label}" if isinstance(e, Entry) else f"{e[0]} {e[1]}" for e in entries]
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out)


def class_order(names: Sequence[str], case_sensitive: bool = False) -> List[str]:
    """Class order used by the benchmarks: sorted folder names. Office-Home's official lists sort
    case-insensitively ('TV' after 'Trash_Can'); for all-lowercase names both rules agree."""
    return sorted(names, key=(None if case_sensitive else (lambda s: (s.lower(), s))))


def _class_root(domain_dir: Path) -> Path:
    """Descend through single-folder levels without images (Office-31's 'images/')."""
    d = domain_dir
    while True:
        subs = [p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")]
        files = [p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        if len(subs) == 1 and not files:
            d = subs[0]
        else:
            return d


def make_domain_list(
    root: Path, domain: str, classes: Optional[List[str]] = None, case_sensitive: bool = False
) -> List[Entry]:
    droot = root / domain
    if not droot.is_dir():
        raise DataError(f"domain folder '{droot}' not found")
    croot = _class_root(droot)
    found = [p.name for p in croot.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if not found:
        raise DataError(f"'{croot}' has no class folders (expected {croot}/<class>/<image>)")
    if classes is None:
        classes = class_order(found, case_sensitive)
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DataError(f"'{croot}': class folder(s) {unknown[:5]} are not in the given class order")
    entries = []
    for label, cname in enumerate(classes):
        cdir = croot / cname
        if not cdir.is_dir():
            continue
        for f in sorted(p for p in cdir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS):
            entries.append(Entry(f.relative_to(root).as_posix(), label, len(entries) + 1))
    return entries


def classes_from_list(entries: Sequence[Entry]) -> List[str]:
    """Class names by label from a list whose paths end in <class>/<file>."""
    names: Dict[int, str] = {}
    for e in entries:
        names.setdefault(e.label, Path(e.path).parent.name)
    if sorted(names) != list(range(len(names))):
        missing = sorted(set(range(max(names) + 1)) - set(names))
        raise DataError(f"the class-order list has no sample for label(s) {missing[:5]}")
    return [names[i] for i in range(len(names))]


def list_name(domain_folder: str) -> str:
    """List stem for a domain folder: 'Real World' -> 'RealWorld' (the official name)."""
    return (
        domain_folder.replace(" ", "").replace("_", "")
        if domain_folder.lower().replace(" ", "").replace("_", "") == "realworld"
        else domain_folder
    )
