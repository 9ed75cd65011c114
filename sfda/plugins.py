"""Plugins: user code outside the package that registers components (a method, a loss, a weighter, ...).

A plugin is a Python file (``path/to/my_method.py``) or an importable module name (``mypkg.methods``);
importing it runs its ``@METHODS.register(...)`` (etc.) decorators, after which configs can name the new
components. The ``sfda`` command loads the plugins named by ``--plugin`` (repeatable, before the
sub-command) and by the ``SFDA_PLUGINS`` environment variable (entries separated by ``os.pathsep``, ':' on
Linux and macOS), before it reads any config. From Python, call :func:`load_plugin` (or simply import the
module) before ``load_config``/``run_config``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterable, List

from .errors import SfdaError

ENV_VAR = "SFDA_PLUGINS"


def plugin_specs(cli: Iterable[str] = ()) -> List[str]:
    """Plugins from ``SFDA_PLUGINS`` then from the command line, without empty entries or repeats."""
    env = [s.strip() for s in os.environ.get(ENV_VAR, "").split(os.pathsep)]
    out: List[str] = []
    for s in env + [str(c).strip() for c in cli or ()]:
        if s and s not in out:
            out.append(s)
    return out


def _module_name(path: Path) -> str:
    stem = re.sub(r"\W", "_", path.stem)
    tag = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    return f"sfda_plugin_{stem}_{tag}"


def load_plugin(spec: str) -> ModuleType:
    """Import a plugin file or module once (loading it again returns the same module)."""
    spec = str(spec)
    looks_like_file = spec.endswith(".py") or os.sep in spec or (os.altsep and os.altsep in spec)
    if looks_like_file:
        path = Path(os.path.expanduser(spec)).resolve()
        if not path.is_file():
            raise SfdaError(f"plugin '{spec}' not found (looked for {path}); check --plugin / {ENV_VAR}")
        name = _module_name(path)
        if name in sys.modules:
            return sys.modules[name]
        mspec = importlib.util.spec_from_file_location(name, path)
        if mspec is None or mspec.loader is None:
            raise SfdaError(f"plugin '{spec}' is not a Python file that can be imported")
        module = importlib.util.module_from_spec(mspec)
        sys.modules[name] = module
        try:
            mspec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as e:
        if e.name and (spec == e.name or spec.startswith(e.name + ".")):
            raise SfdaError(
                f"plugin '{spec}': no module named '{e.name}'; give a .py file path or a module "
                f"importable from PYTHONPATH (--plugin / {ENV_VAR})"
            ) from None
        raise


def load_plugins(specs: Iterable[str]) -> List[ModuleType]:
    return [load_plugin(s) for s in specs]
