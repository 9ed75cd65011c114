"""Checking a config against its schema: the defaults tree (``defaults.py``) and, for every component
section, the component's :class:`~sfda.params.Params`. Every key must be known and every value of its type
and in its range; a failure is one line naming the key, where it was set (file and line, or the command
line) and the closest valid key or the allowed values.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Tuple

from ..errors import ConfigError
from ..params import NoParams, ParamError, check_value, default_of, fields_of, params_class
from ..registry import BACKBONES, FORMATS, suggest
from .defaults import CONSTRAINTS
from .files import Where
from .node import Cfg, Component


def _type_name(v: Any) -> str:
    return {
        bool: "true/false",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(v), type(v).__name__)


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


def resolve_params(user: dict, pcls, path: Tuple[str, ...], where: Where, src: str, what: str) -> Cfg:
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
            out[k] = resolve(user.get(k), Component(comp.registry, comp.default), kp, where, src)
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


def resolve(user: Any, schema: Any, path: Tuple[str, ...], where: Where, src: str) -> Any:
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
        out = resolve_params(body, params_class(cls), path, where, src, f" ({schema.registry.kind} '{name}')")
        out["name"] = str(name).lower()
        return out
    if isinstance(schema, dict):
        if user is None:
            user = {}
        if not isinstance(user, dict):
            raise ConfigError(f"{loc}: '{dotted}' must be a mapping, got {user!r}")
        if not schema and user:  # an open mapping (e.g. data.params): checked by check_open_sections
            return Cfg(copy.deepcopy(user))
        for k in user:
            if k not in schema:
                raise _unknown_key(path, k, schema.keys(), where, loc)
        out = Cfg()
        for k, d in schema.items():
            if k in user:
                out[k] = resolve(user[k], d, path + (k,), where, src)
            else:
                out[k] = (
                    resolve(None, d, path + (k,), where, src) if isinstance(d, (dict, Component)) else copy.deepcopy(d)
                )
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


def check_open_sections(cfg: Cfg, where: Where, src: str) -> None:
    """``model.params`` and ``data.params`` belong to the chosen backbone and dataset format: check them
    against that component's parameters (and fill their defaults)."""
    for section, reg_key, registry in (("model", "backbone", BACKBONES), ("data", "format", FORMATS)):
        sec = cfg[section]
        path = (section, "params")
        cls = registry.get(sec[reg_key], key=f"{where.get((section, reg_key), src)}: '{section}.{reg_key}'")
        given = dict(sec.get("params") or {})
        if given and params_class(cls) is NoParams:
            key = next(iter(given))
            raise ConfigError(
                f"{where.get(path + (key,), where.get(path, src))}: unknown key '{section}.params.{key}': "
                f"{registry.kind} '{sec[reg_key]}' takes no parameters"
            )
        sec["params"] = resolve_params(
            given, params_class(cls), path, where, src, f" ({registry.kind} '{sec[reg_key]}')"
        )
