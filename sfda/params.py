"""Typed component parameters: one dataclass per registered component, checked once when the config loads.

Every registered component (method, loss, weighter, sampler, backbone, dataset format) declares its
hyperparameters as a :class:`Params` dataclass, ``Params`` on the class (or ``params=`` when registering a
factory)::

    @dataclass
    class NSParams(Params):
        m: int = param(4, low=2, help="group size")
        rho: float = param(1.0, help="+1 winner strengthening, -1 loser focusing")
        form: Literal["exp", "linear"] = param("exp")

The annotation gives the type (bool, int, float, str, ``Optional[...]``, ``List[...]``, ``Literal[...]`` for
a closed set of values, :data:`Spec` for a nested component); :func:`param` gives the default, a range
(``low``/``high``, open with ``low_open``/``high_open``), allowed values (``choices``) and a one-line help.
Checks that involve several fields go in ``Params.check`` and raise :class:`ParamError` naming the key.

The config loader validates every section against these declarations (with its ``file:line`` messages) and
components receive the typed object as ``self.hparams``; nothing else in sfda checks a parameter value.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import MISSING, dataclass
from typing import Any, Dict, List, Literal, Optional, Tuple, Type, Union

from .errors import ConfigError

Spec = Dict[str, Any]  # a nested component section: {"name": ..., <its params>}


class ParamError(ValueError):
    """A parameter value is invalid: ``key`` (a field name, dotted for nested ones) and the reason."""

    def __init__(self, key: str, message: str):
        super().__init__(f"'{key}' {message}")
        self.key = key
        self.message = message


class Nested:
    """Marks a field as a nested component section of ``registry`` (default ``default``)."""

    def __init__(self, registry, default: str):
        self.registry = registry
        self.default = default


def param(
    default: Any = MISSING,
    *,
    low: Optional[float] = None,
    high: Optional[float] = None,
    low_open: bool = False,
    high_open: bool = False,
    choices: Optional[tuple] = None,
    help: str = "",
    component: Optional[Nested] = None,
) -> Any:
    """A dataclass field with its constraints in ``metadata`` (mutable defaults are copied per instance)."""
    meta = {
        "low": low,
        "high": high,
        "low_open": low_open,
        "high_open": high_open,
        "choices": choices,
        "help": help,
        "component": component,
    }
    if component is not None:
        default = {"name": component.default}
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: typing.cast(Any, type(value))(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def nested(registry, default: str, help: str = "") -> Any:
    """A field holding a nested component section (``{name: ..., <params>}``), e.g. SHOT's ``pl_loss``."""
    return param(component=Nested(registry, default), help=help)


@dataclass
class Params:
    """Base of every component's parameter dataclass."""

    def check(self) -> None:
        """Checks across fields; raise :class:`ParamError` (key, reason). Single-field constraints are declared."""

    def to_dict(self) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> Params:
        return build_params(type(self), {**self.to_dict(), **changes})


@dataclass
class NoParams(Params):
    """A component without parameters."""


# -- describing and checking fields ---------------------------------------------------------------------


def _hints(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=False)


def _strip_optional(tp: Any) -> Tuple[Any, bool]:
    if typing.get_origin(tp) is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True
    return tp, False


def type_name(tp: Any) -> str:
    """How a type is shown in messages and ``sfda list``: int, float, str, bool, list[int], one of {...}, ..."""
    tp, optional = _strip_optional(tp)
    origin = typing.get_origin(tp)
    if origin is Literal:
        name = "|".join(str(a) for a in typing.get_args(tp))
    elif origin in (list, List):
        args = typing.get_args(tp)
        name = f"list[{type_name(args[0])}]" if args else "list"
    elif origin in (dict, Dict) or tp is dict:
        name = "mapping"
    elif isinstance(tp, type):
        name = tp.__name__
    else:
        name = str(tp)
    return f"{name} or null" if optional else name


def _kind_phrase(tp: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, type_name(tp))


def _fmt_range(meta: dict) -> str:
    lo = "(" if meta["low_open"] else "["
    hi = ")" if meta["high_open"] else "]"
    low = "-inf" if meta["low"] is None else f"{meta['low']:g}"
    high = "inf" if meta["high"] is None else f"{meta['high']:g}"
    return f"in {lo}{low}, {high}{hi}"


def check_value(tp: Any, meta: dict, value: Any) -> Any:
    """``value`` converted to the field's type, or :class:`ValueError` with the reason (no key in it)."""
    if tp is Any:
        return check_constraints(meta, value)
    tp, optional = _strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise ValueError(f"must be {_kind_phrase(tp)}, got null")
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        for a in allowed:  # case-insensitive for strings, exact for the rest
            if value == a or (isinstance(value, str) and isinstance(a, str) and value.lower() == a.lower()):
                return a
        raise ValueError(f"must be one of {', '.join(map(str, allowed))}, got {value!r}")
    if origin in (list, List) or tp is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"must be a list, got {value!r}")
        args = typing.get_args(tp)
        if args:
            out = []
            for i, v in enumerate(value):
                try:
                    out.append(check_value(args[0], {**meta, "choices": None}, v))
                except ValueError as e:
                    raise ValueError(f"item {i} {e}") from None
            value = out
        else:
            value = list(value)
    elif tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ValueError(f"must be an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number, got {value!r}")
        value = float(value)
        if math.isnan(value):
            raise ValueError("must be a number, got nan")
    elif tp is str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {value!r}")
    elif origin in (dict, Dict) or tp is dict:
        if not isinstance(value, dict):
            raise ValueError(f"must be a mapping, got {value!r}")
    return check_constraints(meta, value)


def check_constraints(meta: dict, value: Any) -> Any:
    """``value`` if it is among ``meta['choices']`` and inside ``meta``'s range, else :class:`ValueError`."""
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise ValueError(f"must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = meta.get("low"), meta.get("high")
        bad = (lo is not None and (value <= lo if meta["low_open"] else value < lo)) or (
            hi is not None and (value >= hi if meta["high_open"] else value > hi)
        )
        if bad:
            raise ValueError(f"must be {_fmt_range(meta)}, got {value!r}")
    return value


def params_class(obj: Any) -> Type[Params]:
    """The parameter dataclass of a registered component (``NoParams`` if it declares none)."""
    cls = getattr(obj, "Params", None)
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        return cls
    return NoParams


def fields_of(cls: Type[Params]) -> List[Tuple[dataclasses.Field, Any]]:
    hints = _hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return MISSING


def describe(obj: Any) -> List[Tuple[str, str, Any, str]]:
    """(name, type, default, help + constraints) for each parameter of a component (``sfda list``)."""
    out = []
    for f, tp in fields_of(params_class(obj)):
        meta = f.metadata
        notes = [meta.get("help", "")] if meta.get("help") else []
        if meta.get("component") is not None:
            tname = f"{meta['component'].registry.kind} section"
        else:
            tname = type_name(tp)
        if meta.get("low") is not None or meta.get("high") is not None:
            notes.append(_fmt_range(dict(meta)))
        if meta.get("choices") is not None:
            notes.append("one of " + ", ".join(map(str, meta["choices"])))
        out.append((f.name, tname, default_of(f), "; ".join(notes)))
    return out


def build_params(cls: Type[Params], values: Dict[str, Any], *, prefix: str = "") -> Params:
    """Programmatic construction (tests, code): check ``values`` as the config loader does; a bad key or value
    raises :class:`ConfigError` naming ``prefix + key``."""
    known = {f.name: (f, tp) for f, tp in fields_of(cls)}
    kwargs = {}
    for k, v in values.items():
        if k == "name" and k not in known:  # a spec's component name (a timm backbone has a `name` parameter)
            continue
        if k not in known:
            from .registry import suggest

            raise ConfigError(f"unknown parameter '{prefix}{k}'{suggest(k, known)}")
        f, tp = known[k]
        if f.metadata.get("component") is not None:
            kwargs[k] = v
            continue
        try:
            kwargs[k] = check_value(tp, dict(f.metadata), v)
        except ValueError as e:
            raise ConfigError(f"'{prefix}{k}' {e}") from None
    obj = cls(**kwargs)
    try:
        obj.check()
    except ParamError as e:
        raise ConfigError(f"'{prefix}{e.key}' {e.message}") from None
    return obj


def hparams_for(component: Any, hparams: Optional[Params], overrides: Dict[str, Any], prefix: str = "") -> Params:
    """The typed parameters a component is constructed with: ``hparams`` as given (from the config), or its
    ``Params`` built from keyword ``overrides`` (code and tests)."""
    cls = params_class(component)
    if hparams is not None and not overrides:
        return hparams
    base = hparams.to_dict() if hparams is not None else {}
    return build_params(cls, {**base, **overrides}, prefix=prefix)
