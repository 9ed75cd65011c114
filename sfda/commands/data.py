"""sfda data digits-offline --out DIR: build the offline digits benchmark."""
from __future__ import annotations

import os
from pathlib import Path

from ..data import digits_offline

CONFIG = "digits/shot/mnist5k_uci"  # an example config that reads the benchmark


def usage_hint(out: Path) -> str:
    """How the digits configs find the benchmark in ``out``: they read ``data.root``, else
    ``$SFDA_DATA/digits-offline``, else ``./data/digits-offline`` (see ``data.formats.data_root``)."""
    out = Path(out).resolve()
    if out == digits_offline.default_root().resolve():
        where = "$SFDA_DATA" if os.environ.get("SFDA_DATA") else f"./data, run from {Path.cwd()}"
        return f"the digits configs find it there ({where}), e.g. `sfda run -c {CONFIG}`"
    ways = [f"data.root={out} (e.g. `sfda run -c {CONFIG} data.root={out}`)"]
    if out.name == digits_offline.FOLDER:
        ways.append(f"`export SFDA_DATA={out.parent}`")
    ways.append(f"`sfda demo --data {out}`")
    return "use it with " + ", or ".join(ways)


def _digits(a) -> int:
    out = Path(a.out) if a.out else digits_offline.default_root()
    if digits_offline.is_built(out) and not a.force:
        print(f"already built: {out} (use --force to rebuild); {usage_hint(out)}")
        return 0
    digits_offline.build(out, a.digits_png, allow_download=not a.no_download)
    print(f"built {out}; {usage_hint(out)}")
    return 0


def register(sub):
    p = sub.add_parser("data", help="Build offline datasets (the MNIST-5k / UCI digits benchmark).")
    s = p.add_subparsers(dest="what", metavar="DATASET")
    d = s.add_parser("digits-offline", help="MNIST-5k (OpenCV digits.png) and UCI digits (scikit-learn) as PNG + lists.")
    d.add_argument("--out", default=None, help="output folder (default: $SFDA_DATA/digits-offline or ./data/digits-offline)")
    d.add_argument("--digits-png", default=None, help="path to OpenCV's digits.png (else $SFDA_DIGITS_PNG, opencv-doc, download)")
    d.add_argument("--no-download", action="store_true", help="never use the network")
    d.add_argument("--force", action="store_true", help="rebuild even if the folder is complete")
    d.set_defaults(func=_digits)
    p.set_defaults(func=lambda a: p.print_help())
