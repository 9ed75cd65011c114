"""Check a user's copy of a dataset against a data list and print a readable report."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from PIL import Image

from ..paths import LISTS_DIR
from .lists import IMAGE_EXTENSIONS, read_list

# official list sizes (see data_lists/README.md)
KNOWN_COUNTS = {
    "office-home": {"Art": 2427, "Clipart": 4365, "Product": 4439, "RealWorld": 4357},
    "office31": {"amazon": 2817, "dslr": 498, "webcam": 795},
    "visda-c": {"validation": 55388, "train": 152397},
    "domainnet-126": {"clipart": 18523, "painting": 30042, "real": 69622, "sketch": 24147},
}


# lists that are not shipped and must be made from the user's copy of the dataset
MAKE_LIST_HINTS = {
    ("visda-c", "train"): (
        "VisDA-C's synthetic training list (152,397 images) is not shipped; make it from your copy with "
        "`sfda lists make --root {root} --domains train --classes-from {lists}/visda-c/validation.txt` "
        "({root} holds train/<class>/*.png; the list goes to {root}/lists/train.txt, where the configs find it)"
    ),
}


def missing_list_hint(benchmark: str, name: str, root: Optional[str] = None) -> str:
    """How to make a list that is not shipped ('' if there is no specific advice)."""
    hint = MAKE_LIST_HINTS.get((benchmark, name), "")
    return hint.format(root=root or "ROOT", lists=LISTS_DIR)


def _norm(name: str) -> str:
    return name.replace(" ", "").replace("_", "").replace("-", "").lower()


@dataclass
class Report:
    list_file: str
    root: str
    listed: int = 0
    expected: Optional[int] = None
    missing: List[Tuple[int, str]] = field(default_factory=list)
    unreadable: List[Tuple[int, str, str]] = field(default_factory=list)
    label_folders: Dict[int, set] = field(default_factory=dict)
    folder_labels: Dict[str, set] = field(default_factory=dict)
    unlisted: Dict[str, int] = field(default_factory=dict)
    hints: List[str] = field(default_factory=list)

    @property
    def count_ok(self) -> bool:
        return self.expected is None or self.expected == self.listed

    @property
    def inconsistent(self):
        a = {k: v for k, v in self.label_folders.items() if len(v) > 1}
        b = {k: v for k, v in self.folder_labels.items() if len(v) > 1}
        return a, b

    @property
    def ok(self) -> bool:
        a, b = self.inconsistent
        return not (self.missing or self.unreadable or a or b or not self.count_ok)

    def render(self) -> str:
        lines = [f"{self.list_file}: {self.listed} listed, {self.listed - len(self.missing)} found under {self.root}"]
        if self.expected is not None:
            lines.append(
                f"  count: {'ok' if self.count_ok else 'MISMATCH'} ({self.listed} listed, expected {self.expected})"
            )
        if self.missing:
            lines.append(f"  {len(self.missing)} missing, e.g. line {self.missing[0][0]}: {self.missing[0][1]}")
        if self.unreadable:
            ln, p, why = self.unreadable[0]
            lines.append(f"  {len(self.unreadable)} unreadable, e.g. line {ln}: {p} ({why})")
        a, b = self.inconsistent
        for lab, folders in sorted(a.items())[:5]:
            lines.append(f"  label {lab} is used for several class folders: {', '.join(sorted(folders))}")
        for folder, labs in sorted(b.items())[:5]:
            lines.append(f"  class folder {folder} has several labels: {sorted(labs)}")
        if self.unlisted:
            total = sum(self.unlisted.values())
            ex = next(iter(self.unlisted))
            lines.append(
                f"  note: {total} image(s) in the class folders are not in the list (e.g. {self.unlisted[ex]} in {ex})"
            )
        lines += [f"  hint: {h}" for h in self.hints]
        lines.append("  OK" if self.ok else "  PROBLEMS FOUND")
        return "\n".join(lines)


def verify_domain(
    root: Path, list_file: Path, num_classes: int, expected: Optional[int] = None, deep: bool = False
) -> Report:
    root, list_file = Path(root), Path(list_file)
    entries = read_list(list_file, num_classes)
    rep = Report(str(list_file), str(root), listed=len(entries), expected=expected)
    label_folders = defaultdict(set)
    folder_labels = defaultdict(set)
    listed_per_folder = defaultdict(int)
    for e in entries:
        folder = str(Path(e.path).parent)
        label_folders[e.label].add(Path(e.path).parent.name)
        folder_labels[folder].add(e.label)
        listed_per_folder[folder] += 1
        p = root / e.path
        if not p.is_file():
            rep.missing.append((e.line, e.path))
        elif deep:
            try:
                with Image.open(p) as im:
                    im.convert("RGB").load()
            except Exception as ex:
                rep.unreadable.append((e.line, e.path, type(ex).__name__))
    rep.label_folders, rep.folder_labels = dict(label_folders), dict(folder_labels)
    for folder, n in listed_per_folder.items():
        d = root / folder
        if d.is_dir():
            on_disk = sum(1 for f in d.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
            if on_disk > n:
                rep.unlisted[folder] = on_disk - n
    if rep.missing:
        tops = {Path(e.path).parts[0] for e in entries}
        for top in sorted(tops):
            if not (root / top).exists() and root.is_dir():
                alt = [d.name for d in root.iterdir() if d.is_dir() and _norm(d.name) == _norm(top)]
                if alt:
                    rep.hints.append(
                        f"the list expects folder '{top}' but the data has '{alt[0]}': rename '{root / alt[0]}' "
                        f"to '{root / top}' (the official lists use '{top}')"
                    )
                else:
                    rep.hints.append(f"folder '{root / top}' does not exist: is data.root right?")
    return rep
