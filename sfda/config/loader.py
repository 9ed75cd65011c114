"""Load, merge, override and validate configs.

- ``_base_: path`` (or a list of paths, relative to the file) is loaded first and the file is merged on top.
- Overrides are ``dotted.key=value`` strings; values are parsed as YAML (``1e-3`` is a float).
- Validation is strict: an unknown key or a value of the wrong type stops the run with one line naming the
  key, where it was set (file and line, or the command line) and the closest valid key.
"""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import yaml

from ..errors import ConfigError
from ..params import NoParams, ParamError, check_value, default_of, fields_of, params_class
from ..paths import CONFIGS_DIR
from ..registry import BACKBONES, FORMATS, suggest
from .defaults import CONSTRAINTS, DEFAULTS, RELATIVE_TO_FILE
from .node import Cfg, Component

BASE_KEY = "_base_"
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$|^[-+]?(\.inf|\.Inf|\.INF)$|^\.nan$")


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


def _merge(dst: dict, src: dict, dst_where: Where, src_where: Where, path=()) -> None:
    for k, v in src.items():
        kp = path + (k,)
        if isinstance(v, dict) and isinstance(dst.get(k), dict) and "name" not in v:
            _merge(dst[k], v, dst_where, src_where, kp)
        elif isinstance(v, dict) and isinstance(dst.get(k), dict) and v.get("name") == dst[k].get("name"):
            _merge(dst[k], v, dst_where, src_where, kp)
        else:
            dst[k] = copy.deepcopy(v)
            for wk in [w for w in dst_where if w[: len(kp)] == kp]:
                del dst_where[wk]
        for wk, wv in src_where.items():
            if wk[: len(kp)] == kp:
                dst_where[wk] = wv


def _load_chain(path: Path, seen: Tuple[Path, ...] = ()) -> Tuple[dict, Where]:
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
        bdata, bwhere = _load_chain(bp, seen + (path,))
        _merge(merged, bdata, mwhere, bwhere)
    _merge(merged, data, mwhere, where)
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


def _apply_override(data: dict, where: Where, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {} if p not in node or node[p] is None else ({"name": node[p]} if isinstance(node[p], str) else node[p])
            if not isinstance(node[p], dict):
                raise ConfigError(f"override '{key}': '{p}' is not a section")
        node = node[p]
    node[parts[-1]] = value
    where[tuple(parts)] = "command line"


def _type_name(v: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(v), type(v).__name__)


def _check_type(value: Any, default: Any, key: str, where: str) -> Any:
    if default is None or value is None and default is None:
        return value
    if value is None:
        raise ConfigError(f"{where}: '{key}' must be {_type_name(default)}, got null")
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
        value = list(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"{where}: '{key}' must be {_type_name(default)}, got {value!r}")
    return value


def _unknown_key(path: Tuple[str, ...], k: str, keys, where: Where, loc: str) -> ConfigError:
    kl = where.get(path + (k,), loc)
    full = ".".join(path + (k,))
    near = suggest(k, list(keys))
    if near:
        near = near.replace("'", "'" + (".".join(path) + "." if path else ""), 1)
    return ConfigError(f"{kl}: unknown key '{full}'{near}")


def _resolve_params(user: dict, pcls, path: Tuple[str, ...], where: Where, src: str, what: str) -> Cfg:
    """Check a component section against its :class:`~sfda.params.Params` dataclass: every key known, every
    value of its type and in its range, then the cross-field checks; return the values (defaults filled)."""
    loc = where.get(path, src)
    known = {f.name: (f, tp) for f, tp in fields_of(pcls)}
    for k in user:
        if k not in known:
            raise _unknown_key(path, k, known, where, loc)
    out = Cfg()
    for k, (f, tp) in known.items():
        kp = path + (k,)
        kloc = where.get(kp, loc)
        comp = f.metadata.get("component")
        if comp is not None:
            out[k] = _resolve(user.get(k), Component(comp.registry, comp.default), kp, where, src)
            continue
        value = user[k] if k in user else default_of(f)
        try:
            out[k] = check_value(tp, dict(f.metadata), value)
        except ValueError as e:
            raise ConfigError(f"{kloc}: '{'.'.join(kp)}' {e}{what}") from None
    try:
        pcls(**out).check()
    except ParamError as e:
        kp = path + tuple(e.key.split("."))
        raise ConfigError(f"{where.get(kp, loc)}: '{'.'.join(kp)}' {e.message}{what}") from None
    return out


def _resolve(user: Any, schema: Any, path: Tuple[str, ...], where: Where, src: str) -> Any:
    """Fill ``schema`` defaults with ``user`` values, checking keys and types."""
    dotted = ".".join(path)
    loc = where.get(path, src)
    if isinstance(schema, Component):
        if user is None:
            user = {}
        if isinstance(user, str):
            user = {"name": user}
        if not isinstance(user, dict):
            raise ConfigError(f"{loc}: '{dotted}' must be a mapping with a 'name' key, got {user!r}")
        name = user.get("name", schema.default_name)
        cls = schema.registry.get(name, key=f"{where.get(path + ('name',), loc)}: '{dotted}.name'")
        body = {k: v for k, v in user.items() if k != "name"}
        out = _resolve_params(body, params_class(cls), path, where, src, f" ({schema.registry.kind} '{name}')")
        out["name"] = str(name).lower()
        return out
    if isinstance(schema, dict):
        if user is None:
            user = {}
        if not isinstance(user, dict):
            raise ConfigError(f"{loc}: '{dotted}' must be a mapping, got {user!r}")
        if not schema and user:  # an open mapping (e.g. data.params): checked by _check_open_sections
            return Cfg(copy.deepcopy(user))
        for k in user:
            if k not in schema:
                raise _unknown_key(path, k, schema.keys(), where, loc)
        out = Cfg()
        for k, d in schema.items():
            if k in user:
                out[k] = _resolve(user[k], d, path + (k,), where, src)
            else:
                out[k] = _resolve(None, d, path + (k,), where, src) if isinstance(d, (dict, Component)) else copy.deepcopy(d)
        return out
    return _check_constraint(_check_type(user, schema, dotted, loc), path, loc)


def _check_constraint(value: Any, path: Tuple[str, ...], loc: str) -> Any:
    """Range, allowed values or pattern of a base-schema key (``defaults.CONSTRAINTS``)."""
    rule = CONSTRAINTS.get(path)
    if rule is None or value is None:
        return value
    why = f" ({rule['why']})" if "why" in rule else ""
    if "pattern" in rule:
        if not re.match(rule["pattern"], str(value)):
            raise ConfigError(f"{loc}: '{'.'.join(path)}' must be one of {rule['example']}, got {value!r}")
        return value
    meta = {"low": None, "high": None, "low_open": False, "high_open": False, "choices": None}
    meta.update({k: v for k, v in rule.items() if k in meta})
    try:
        return check_value(Any, meta, value)
    except ValueError as e:
        raise ConfigError(f"{loc}: '{'.'.join(path)}' {e}{why}") from None


def _check_open_sections(cfg: Cfg, where: Where, src: str) -> None:
    """``model.params`` and ``data.params`` belong to the chosen backbone and dataset format: check them
    against that component's parameters (and fill their defaults)."""
    for section, reg_key, registry in (("model", "backbone", BACKBONES), ("data", "format", FORMATS)):
        sec = cfg[section]
        path = (section, "params")
        cls = registry.get(sec[reg_key], key=f"{where.get((section, reg_key), src)}: '{section}.{reg_key}'")
        given = dict(sec.get("params") or {})
        if given and params_class(cls) is NoParams:
            key = next(iter(given))
            raise ConfigError(f"{where.get(path + (key,), where.get(path, src))}: unknown key '{section}.params.{key}': "
                              f"{registry.kind} '{sec[reg_key]}' takes no parameters")
        sec["params"] = _resolve_params(given, params_class(cls), path, where, src,
                                        f" ({registry.kind} '{sec[reg_key]}')")


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


def config_from_dict(data: dict, overrides: Iterable[str] = (), *, path: Optional[Path] = None,
                     where: Optional[Where] = None) -> Cfg:
    data = copy.deepcopy(data)
    where = dict(where or {})
    for key, value in parse_overrides(overrides):
        _apply_override(data, where, key, value)
    src = str(path) if path else "config"
    cfg = _resolve(data, DEFAULTS, (), where, src)
    _check_open_sections(cfg, where, src)
    _derive(cfg, path)
    return cfg


def find_config(name: str) -> Path:
    """A config path as given, or relative to the shipped configs/ folder (with or without .yaml)."""
    cands = [Path(name), CONFIGS_DIR / name, CONFIGS_DIR / f"{name}.yaml", Path(f"{name}.yaml")]
    for c in cands:
        if c.is_file():
            return c
    raise ConfigError(f"config '{name}' not found (also looked in {CONFIGS_DIR}); `sfda list` shows the shipped configs")


def load_config(path, overrides: Iterable[str] = ()) -> Cfg:
    """Load one config, or several merged in order (a list: later files override earlier ones, as
    ``sfda adapt -c task.yaml -c variant.yaml``). With several files the run name is the first file's
    name plus ``+<stem>`` of each other file, unless a file sets ``name``."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    files = [find_config(str(p)) for p in paths]
    data, where = _load_chain(files[0])
    for extra in files[1:]:
        d2, w2 = _load_chain(extra)
        _merge(data, d2, where, w2)
    cfg = config_from_dict(data, overrides, path=files[0], where=where)
    if len(files) > 1 and not any(k == ("name",) for k in where):
        cfg.name = cfg.name + "".join(f"+{f.stem}" for f in files[1:])
    cfg["_file"] = str(files[0]) if len(files) == 1 else ",".join(map(str, files))
    cfg["_files"] = [str(f) for f in files]
    return cfg


def dump_config(cfg: Cfg) -> str:
    d = cfg.to_dict() if isinstance(cfg, Cfg) else dict(cfg)
    d.pop("_file", None)
    d.pop("_overrides", None)
    d.pop("_files", None)
    return yaml.safe_dump(d, sort_keys=False, default_flow_style=None)
