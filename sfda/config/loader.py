"""Load, merge, override and validate configs: :func:`load_config` (files) and :func:`config_from_dict`.

Reading the YAML files (``file:line`` of every key, ``_base_`` chains, overrides) is in ``files.py``; the
strict checks against the defaults and the components' parameters are in ``schema.py``. Validation is
strict: an unknown key or a value of the wrong type stops the run with one line naming the key, where it
was set (file and line, or the command line) and the closest valid key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Iterable, Optional

from ..paths import CONFIGS_DIR
from .defaults import DEFAULTS
from .files import Where, apply_override, dump_config, find_config, load_chain, merge, parse_overrides
from .node import Cfg
from .schema import check_open_sections, resolve

__all__ = ["config_from_dict", "dump_config", "find_config", "load_config", "parse_overrides"]


def _derive(cfg: Cfg, path: Optional[Path]) -> None:
    if not cfg.name and path is not None:
        try:
            rel = path.resolve().relative_to(CONFIGS_DIR.resolve())
            cfg.name = str(rel.with_suffix(""))
        except ValueError:
            cfg.name = path.stem
    if not cfg.task:
        d = cfg.data
        cfg.task = f"{d.source}_{d.target}" if d.target else (d.source or cfg.name)


def config_from_dict(
    data: dict, overrides: Iterable[str] = (), *, path: Optional[Path] = None, where: Optional[Where] = None
) -> Cfg:
    data = copy.deepcopy(data)
    where = dict(where or {})
    for key, value in parse_overrides(overrides):
        apply_override(data, where, key, value)
    src = str(path) if path else "config"
    cfg = resolve(data, DEFAULTS, (), where, src)
    check_open_sections(cfg, where, src)
    _derive(cfg, path)
    return cfg


def load_config(path, overrides: Iterable[str] = ()) -> Cfg:
    """Load one config, or several merged in order (a list: later files override earlier ones, as
    ``sfda adapt -c task.yaml -c variant.yaml``). With several files the run name is the first file's
    name plus ``+<stem>`` of each other file, unless a file sets ``name``."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    files = [find_config(str(p)) for p in paths]
    data, where = load_chain(files[0])
    for extra in files[1:]:
        d2, w2 = load_chain(extra)
        merge(data, d2, where, w2)
    cfg = config_from_dict(data, overrides, path=files[0], where=where)
    if len(files) > 1 and not any(k == ("name",) for k in where):
        cfg.name = cfg.name + "".join(f"+{f.stem}" for f in files[1:])
    cfg["_file"] = str(files[0]) if len(files) == 1 else ",".join(map(str, files))
    cfg["_files"] = [str(f) for f in files]
    return cfg
