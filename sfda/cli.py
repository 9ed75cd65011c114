"""The ``sfda`` command. Each sub-command is a module in :mod:`sfda.commands` with ``register(subparsers)``
that sets ``func`` on its parser; user errors print one line and exit with status 2."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import warnings
from typing import Callable, Optional

from . import __version__
from .errors import SfdaError
from .plugins import load_plugins, plugin_specs


def _one_line(e: BaseException) -> str:
    msg = str(e)
    if "Original Traceback" in msg:  # raised inside a DataLoader worker: keep the original message
        last = [ln for ln in msg.strip().splitlines() if ln.strip()][-1]
        msg = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(msg.split())


def _report(message: str) -> None:
    """Print a user error; under torchrun once (rank 0's, or that of the one rank that failed)."""
    from .engine import distributed

    if distributed.should_report(message):
        print(f"error: {distributed.error_prefix()}{message}", file=sys.stderr)


def report_errors(main: Callable[[], Optional[int]]) -> int:
    """Run ``main`` (a script's entry point); a user error is one line on stderr, as ``sfda`` prints it, and
    exit status 2."""
    try:
        return int(main() or 0)
    except SfdaError as e:
        _report(_one_line(e))
        return 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sfda", description="Source-free domain adaptation (SHOT, NS weighting, ...).")
    p.add_argument("--version", action="version", version=f"sfda {__version__}")
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE_OR_MODULE",
        help="import a .py file or module that registers components (methods, losses, ...) before the "
        "sub-command runs; repeatable; also read from $SFDA_PLUGINS (see docs/adding-a-method.md)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands

    mods = sorted(info.name for info in pkgutil.iter_modules(commands.__path__) if not info.name.startswith("_"))
    order = {n: i for i, n in enumerate(getattr(commands, "ORDER", []))}
    for name in sorted(mods, key=lambda n: (order.get(n, len(order)), n)):
        importlib.import_module(f"{commands.__name__}.{name}").register(sub)
    return p


def main(argv=None) -> int:
    warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        load_plugins(plugin_specs(args.plugin))
        rc = args.func(args)
        return int(rc or 0)
    except SfdaError as e:
        _report(_one_line(e))
        return 2
    except KeyboardInterrupt:
        if os.environ.get("RANK", "0") in ("", "0"):  # under torchrun every rank is interrupted: rank 0 says it
            print("\ninterrupted: finished epochs are saved; run the same command again to resume", file=sys.stderr)
        return 130
    except RuntimeError as e:
        if "Original Traceback" in str(e) and "Error" in str(e).splitlines()[-1]:
            _report(_one_line(e))
            return 2
        from .engine.distributed import collective_failure

        lost = collective_failure(e)  # under torchrun: another rank failed (it said why) or a timeout
        if lost is None:
            raise
        if lost:
            _report(lost)
        return 1


if __name__ == "__main__":
    sys.exit(main())
