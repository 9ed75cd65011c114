"""Progress display: tqdm bars on a terminal, nothing per batch otherwise (the trainer logs plain lines)."""
from __future__ import annotations

import sys


def resolve_mode(mode: str) -> str:
    if mode == "auto":
        return "bar" if sys.stderr.isatty() else "lines"
    return mode


def progress(iterable, desc: str = "", mode: str = "auto", total=None):
    if resolve_mode(mode) != "bar":
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)
