"""Reading configs as YAML files: ``file:line`` of every key, ``_base_`` chains, dotted command-line overrides,
and writing a resolved config back.

- ``_base_: path`` (or a list of paths, relative to the file) is loaded first and the file is merged on top.
- Overrides are ``dotted.key=value`` strings; values are parsed as YAML (``1e-3`` is a float).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Tuple

import yaml

from ..errors import ConfigError
from ..paths import CONFIGS_DIR
from .defaults import RELATIVE_TO_FILE
from .node import Cfg

BASE_KEY = "_base_"


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` (no dot) as a float, as users expect."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


Where = Dict[Tuple[str, ...], str]  # key path -> "file:line" or "command line"


def _parse_value(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text


def _key_lines(node, path: Tuple[str, ...], fname: str, out: Where) -> None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            kp = path + (str(k.value),)
            out[kp] = f"{fname}:{k.start_mark.line + 1}"
            _key_lines(v, kp, fname, out)


def _read_yaml(path: Path) -> Tuple[dict, Where]:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config '{path}': {e.strerror}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML ({problem})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys to values, got {type(data).__name__}")
    where: Where = {}
    _key_lines(node, (), str(path), where)
    return data, where


def merge(dst: dict, src: dict, dst_where: Where, src_where: Where, path=()) -> None:
    for k, v in src.items():
        kp = path + (k,)
        if isinstance(v, dict) and isinstance(dst.get(k), dict) and "name" not in v:
            merge(dst[k], v, dst_where, src_where, kp)
        elif isinstance(v, dict) and isinstance(dst.get(k), dict) and v.get("name") == dst[k].get("name"):
            merge(dst[k], v, dst_where, src_where, kp)
        else:
            dst[k] = copy.deepcopy(v)
            for wk in [w for w in dst_where if w[: len(kp)] == kp]:
                del dst_where[wk]
        for wk, wv in src_where.items():
            if wk[: len(kp)] == kp:
                dst_where[wk] = wv


def load_chain(path: Path, seen: Tuple[Path, ...] = ()) -> Tuple[dict, Where]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: '_base_' chain loops back to itself")
    data, where = _read_yaml(path)
    for kp in RELATIVE_TO_FILE:
        node = data
        for part in kp[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(kp[-1]), str) and node[kp[-1]]:
            p = Path(os.path.expandvars(os.path.expanduser(node[kp[-1]])))
            node[kp[-1]] = str(p if p.is_absolute() else (path.parent / p).resolve())
    bases = data.pop(BASE_KEY, [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list):
        raise ConfigError(f"{where.get((BASE_KEY,), path)}: '_base_' must be a path or a list of paths")
    merged: dict = {}
    mwhere: Where = {}
    for b in bases:
        bp = Path(os.path.expanduser(str(b)))
        bp = bp if bp.is_absolute() else path.parent / bp
        if not bp.exists():
            raise ConfigError(f"{where.get((BASE_KEY,), path)}: base config '{b}' not found (looked for {bp})")
        bdata, bwhere = load_chain(bp, seen + (path,))
        merge(merged, bdata, mwhere, bwhere)
    merge(merged, data, mwhere, where)
    return merged, mwhere


def parse_overrides(items: Iterable[str]) -> List[Tuple[str, Any]]:
    out = []
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (e.g. optim.lr=0.005)")
        key, val = item.split("=", 1)
        key = key.strip()
        if not key or any(not p for p in key.split(".")):
            raise ConfigError(f"override '{item}': empty key")
        out.append((key, _parse_value(val)))
    return out


def apply_override(data: dict, where: Where, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = (
                {} if p not in node or node[p] is None else ({"name": node[p]} if isinstance(node[p], str) else node[p])
            )
            if not isinstance(node[p], dict):
                raise ConfigError(f"override '{key}': '{p}' is not a section")
        node = node[p]
    node[parts[-1]] = value
    where[tuple(parts)] = "command line"


def find_config(name: str) -> Path:
    """A config path as given, or relative to the shipped configs/ folder (with or without .yaml)."""
    cands = [Path(name), CONFIGS_DIR / name, CONFIGS_DIR / f"{name}.yaml", Path(f"{name}.yaml")]
    for c in cands:
        if c.is_file():
            return c
    raise ConfigError(
        f"config '{name}' not found (also looked in {CONFIGS_DIR}); `sfda list` shows the shipped configs"
    )


def dump_config(cfg: Cfg) -> str:
    d = cfg.to_dict() if isinstance(cfg, Cfg) else dict(cfg)
    d.pop("_file", None)
    d.pop("_overrides", None)
    d.pop("_files", None)
    return yaml.safe_dump(d, sort_keys=False, default_flow_style=None)
