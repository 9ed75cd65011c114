"""sfda list: registered components with their parameters (types and defaults), and shipped configs."""

from __future__ import annotations

import inspect
from dataclasses import MISSING
from typing import Any, List

from ..params import describe
from ..paths import CONFIGS_DIR
from ..registry import BACKBONES, FORMATS, LOSSES, METHODS, SAMPLERS, TRANSFORMS, WEIGHTERS

NAME_WIDTH = 22
LINE_WIDTH = 120
SECTIONS = {"backbone": "model.params", "dataset format": "data.params"}  # where a component's parameters go


def _summary(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.splitlines()[0] if doc else ""


def _default(value: Any) -> str:
    if value is MISSING:
        return "required"
    if isinstance(value, dict) and set(value) == {"name"}:  # a nested component section
        return str(value["name"])
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)


def parameter_lines(obj: Any, verbose: bool) -> List[str]:
    """The parameters of a registered component: one line ``name: type = default, ...`` or, verbose, one line
    per parameter (name, type, default, help and range)."""
    params = describe(obj)
    indent = " " * (NAME_WIDTH + 3)
    if not params:
        return []
    if not verbose:
        items = [f"{name}: {tname} = {_default(default)}" for name, tname, default, _ in params]
        lines = [indent + items[0]]
        for item in items[1:]:
            if len(lines[-1]) + len(", ") + len(item) + len(",") > LINE_WIDTH:  # room for a trailing comma
                lines[-1] += ","
                lines.append(indent + item)
            else:
                lines[-1] += ", " + item
        return lines
    width = max(len(p[0]) for p in params)
    twidth = max(len(p[1]) for p in params)
    return [
        f"{indent}{name:<{width}}  {tname:<{twidth}}  {_default(default):<8}  {notes}".rstrip()
        for name, tname, default, notes in params
    ]


FRAGMENT_DIRS = ("compare", "variants")  # folders of partial configs, merged on top of a task config with a second -c


def _configs(fragments: bool):
    if not CONFIGS_DIR.is_dir():
        return []
    return sorted(
        str(p.relative_to(CONFIGS_DIR).with_suffix(""))
        for p in CONFIGS_DIR.rglob("*.yaml")
        if not p.name.startswith("_") and (p.parent.name in FRAGMENT_DIRS) == fragments
    )


def shipped_configs():
    """Complete configs (runnable alone)."""
    return _configs(False)


def config_fragments():
    """Partial configs (e.g. configs/office-home/compare/gce.yaml) for ``-c TASK.yaml -c FRAGMENT.yaml``."""
    return _configs(True)


def run(a) -> int:
    for reg in (BACKBONES, METHODS, LOSSES, WEIGHTERS, SAMPLERS, FORMATS, TRANSFORMS):
        items = reg.canonical()
        where = f"; parameters in {SECTIONS[reg.kind]}" if reg.kind in SECTIONS else ""
        print(f"{reg.plural} ({len(items)}{where}):")
        for name, obj in items.items():
            print(f"  {name:<{NAME_WIDTH}} {_summary(obj)}")
            for line in parameter_lines(obj, a.verbose):
                print(line)
        if reg is TRANSFORMS:
            print("  (transforms take their sizes from data.resize_size and data.crop_size)")
        print()
    cfgs = shipped_configs()
    print(f"configs ({len(cfgs)}, in {CONFIGS_DIR}):")
    _print_grouped(cfgs)
    frags = config_fragments()
    if frags:
        print(f"\nconfig fragments ({len(frags)}; add to a task config: -c TASK.yaml -c FRAGMENT.yaml):")
        _print_grouped(frags)
    return 0


def _print_grouped(names):
    """One line per folder: ``  office-home/shot/: Ar_Cl Ar_Pr ...``."""
    groups = {}
    for c in names:
        head, _, tail = c.rpartition("/")
        groups.setdefault(head, []).append(tail)
    for head, tails in groups.items():
        print(f"  {head}/: {' '.join(tails)}")


def register(sub):
    p = sub.add_parser(
        "list",
        help="List registered components (backbones, methods, losses, weighters, samplers, "
        "dataset formats, transforms) with their parameters, and the shipped configs.",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="one line per parameter: name, type, default, help and allowed range",
    )
    p.set_defaults(func=run)
