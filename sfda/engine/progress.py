"""Progress display: tqdm bars on a terminal, nothing per batch otherwise (the trainer logs plain lines). On
several processes only rank 0 shows anything."""

from __future__ import annotations

import sys

from .. import parallel


def resolve_mode(mode: str) -> str:
    if not parallel.is_main():
        return "none"
    if mode == "auto":
        return "bar" if sys.stderr.isatty() else "lines"
    return mode


def progress(iterable, desc: str = "", mode: str = "auto", total=None):
    if resolve_mode(mode) != "bar":
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)
