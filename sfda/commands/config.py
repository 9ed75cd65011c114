"""sfda config -c CONFIG [key=value ...]: print the fully resolved config."""

from __future__ import annotations

from ..config import dump_config, load_config


def register(sub):
    p = sub.add_parser("config", help="Print a config with its bases, defaults and overrides resolved.")
    p.add_argument("-c", "--config", required=True, action="append")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.set_defaults(func=lambda a: print(dump_config(load_config(a.config, a.overrides)), end=""))
