"""Config values (:class:`Cfg`, a dict with attribute access) and the schema marker for component sections."""

from __future__ import annotations

import copy
from typing import Any


class Cfg(dict):
    """A dict whose keys are also attributes (``cfg.optim.lr``); nested dicts are Cfg too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for k, v in list(self.items()):
            if isinstance(v, dict) and not isinstance(v, Cfg):
                dict.__setitem__(self, k, Cfg(v))

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = Cfg(value) if isinstance(value, dict) and not isinstance(value, Cfg) else value

    def __deepcopy__(self, memo):
        return Cfg({k: copy.deepcopy(v, memo) for k, v in self.items()})

    def to_dict(self) -> dict:
        return {k: (v.to_dict() if isinstance(v, Cfg) else copy.deepcopy(v)) for k, v in self.items()}


class Component:
    """Schema marker: a section ``{name: ..., <params>}`` whose params come from a registered component.

    ``Component(METHODS, "shot")`` in the schema means: the user gives a mapping with ``name`` (a key of the
    METHODS registry; "shot" if omitted) and any of that component's parameters (its ``Params`` dataclass).
    A bare string is read as the name.
    """

    def __init__(self, registry: Any, default_name: str):
        self.registry = registry
        self.default_name = default_name

    def __repr__(self) -> str:
        return f"Component({self.registry.kind}, {self.default_name!r})"
