"""Name -> component registries.

Backbones, methods, losses, weighters, samplers, dataset formats and transforms are registered by name, so
that a config selects them with a string and a new component is one new file: decorate the class or factory
with ``@LOSSES.register("name")`` and it is available everywhere (config, CLI, ``sfda list``).

A registered component declares its parameters as a :class:`sfda.params.Params` dataclass (``Params`` on the
class, or ``params=`` when registering a factory); the config loader checks user keys and values against it.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Any, Callable, Dict, Iterator, Mapping, Optional

from .errors import ConfigError
from .params import build_params, params_class


class Registry:
    def __init__(self, kind: str, package: Optional[str] = None, plural: Optional[str] = None):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._package = package  # modules under it are imported on first lookup
        self._items: Dict[str, Any] = {}
        self._loaded = package is None

    def register(self, name: Optional[str] = None, *, aliases: tuple = (), params: Optional[type] = None) -> Callable:
        """Register a class or factory under ``name`` (and ``aliases``). ``params``: the parameter dataclass of a
        factory function (a class declares its own ``Params``)."""

        def deco(obj):
            if params is not None:
                obj.Params = params
            key = (name or getattr(obj, "name", None) or obj.__name__).lower()
            for k in (key,) + tuple(a.lower() for a in aliases):
                if k in self._items and self._items[k] is not obj:
                    raise ValueError(f"{self.kind} '{k}' is registered twice")
                self._items[k] = obj
            if isinstance(obj, type) and not getattr(obj, "name", None):
                obj.name = key
            return obj

        return deco

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        pkg = importlib.import_module(self._package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self._package}.{info.name}")

    def get(self, name: str, *, key: str = "") -> Any:
        self._load()
        obj = self._items.get(str(name).lower())
        if obj is None:
            where = f"{key}: " if key else ""
            raise ConfigError(
                f"{where}unknown {self.kind} '{name}'{suggest(str(name), self.names())}; "
                f"`sfda list` shows the registered ones"
            )
        return obj

    def build(self, name: str, values: Mapping[str, Any], *args: Any, key: str, prefix: str, **kwargs: Any) -> Any:
        """The component registered as ``name``, made as ``cls(*args, **kwargs, hparams=...)`` with its ``Params``
        from ``values`` (a config section; a ``name`` entry that is no parameter is skipped), checked as the
        config loader checks them. ``key`` names the name's setting and ``prefix`` the section in errors."""
        cls = self.get(name, key=key)
        return cls(*args, **kwargs, hparams=build_params(params_class(cls), dict(values), prefix=prefix))

    def __contains__(self, name: str) -> bool:
        self._load()
        return str(name).lower() in self._items

    def names(self) -> list:
        self._load()
        return sorted(self._items)

    def canonical(self) -> Dict[str, Any]:
        """Registered objects without their aliases (first name each object was registered under)."""
        self._load()
        seen, out = set(), {}
        for k, v in self._items.items():
            if id(v) not in seen:
                seen.add(id(v))
                out[k] = v
        return dict(sorted(out.items()))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


BACKBONES = Registry("backbone", "sfda.models")
METHODS = Registry("method", "sfda.methods")
LOSSES = Registry("loss", "sfda.losses", "losses")
WEIGHTERS = Registry("weighter", "sfda.weighting")
SAMPLERS = Registry("sampler", "sfda.samplers")
TRANSFORMS = Registry("transform", "sfda.data")
FORMATS = Registry("dataset format", "sfda.data")
