"""sfda list: registered components and shipped configs."""
from __future__ import annotations

import inspect

from ..paths import CONFIGS_DIR
from ..registry import BACKBONES, DATASETS, LOSSES, METHODS, SAMPLERS, TRANSFORMS, WEIGHTERS


def _summary(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.splitlines()[0] if doc else ""


FRAGMENT_DIRS = ("compare", "variants")  # folders of partial configs, merged on top of a task config with a second -c


def _configs(fragments: bool):
    if not CONFIGS_DIR.is_dir():
        return []
    return sorted(str(p.relative_to(CONFIGS_DIR).with_suffix("")) for p in CONFIGS_DIR.rglob("*.yaml")
                  if not p.name.startswith("_") and (p.parent.name in FRAGMENT_DIRS) == fragments)


def shipped_configs():
    """Complete configs (runnable alone)."""
    return _configs(False)


def config_fragments():
    """Partial configs (e.g. configs/office-home/compare/gce.yaml) for ``-c TASK.yaml -c FRAGMENT.yaml``."""
    return _configs(True)


def run(a) -> int:
    for reg in (BACKBONES, METHODS, LOSSES, WEIGHTERS, SAMPLERS, DATASETS, TRANSFORMS):
        items = reg.canonical()
        print(f"{reg.plural} ({len(items)}):")
        for name, obj in items.items():
            defaults = getattr(obj, "defaults", None)
            keys = f"  [{', '.join(k for k in defaults)}]" if defaults and a.verbose else ""
            print(f"  {name:<22} {_summary(obj)}{keys}")
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
    p = sub.add_parser("list", help="List registered backbones, methods, losses, weighters, samplers and shipped configs.")
    p.add_argument("-v", "--verbose", action="store_true", help="also show each component's config keys")
    p.set_defaults(func=run)
