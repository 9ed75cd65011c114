"""sfda data digits-offline --out DIR: build the offline digits benchmark; sfda data digits-lt: the same images
plus the long-tailed lists of the digits-LT benchmark."""

from __future__ import annotations

import os
from pathlib import Path

from ..data import digits_lt, digits_offline
from ..errors import DataError

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


def _digits_lt(a) -> int:
    out = Path(a.out) if a.out else digits_offline.default_root()
    if not digits_offline.is_built(out) or a.force:
        digits_offline.build(out, a.digits_png, allow_download=not a.no_download)
    lists = digits_lt.build_lists(out / "lists", source_lists=out / "lists")
    differ = [
        f.name
        for f in sorted(lists.glob("*.txt"))
        if f.name in digits_lt.LIST_FILES and f.read_text() != (digits_lt.SHIPPED / f.name).read_text()
    ]
    if differ:
        raise DataError(
            f"the lists written to {lists} differ from the shipped {digits_lt.SHIPPED} ({', '.join(differ)}); "
            "the configs read the shipped ones: restore them with git, or rebuild the images (--force)"
        )
    print(
        f"built {out} with the digits-LT lists in {lists} (identical to the shipped {digits_lt.SHIPPED}); "
        f"run it with `scripts/digits_lt.sh` (data.root={out} unless it is the default folder)"
    )
    return 0


def _image_args(d) -> None:
    d.add_argument(
        "--digits-png", default=None, help="path to OpenCV's digits.png (else $SFDA_DIGITS_PNG, opencv-doc, download)"
    )
    d.add_argument("--no-download", action="store_true", help="never use the network")
    d.add_argument("--force", action="store_true", help="rebuild the images even if the folder is complete")


def register(sub):
    p = sub.add_parser("data", help="Build offline datasets (the MNIST-5k / UCI digits benchmark).")
    s = p.add_subparsers(dest="what", metavar="DATASET")
    d = s.add_parser(
        "digits-offline", help="MNIST-5k (OpenCV digits.png) and UCI digits (scikit-learn) as PNG + lists."
    )
    d.add_argument(
        "--out", default=None, help="output folder (default: $SFDA_DATA/digits-offline or ./data/digits-offline)"
    )
    _image_args(d)
    d.set_defaults(func=_digits)
    lt = s.add_parser(
        "digits-lt",
        help="digits-offline plus the long-tailed MNIST-5k lists (imbalance 1, 10, 50, 100; "
        "a fixed 100-per-class test split; UCI as a cross-dataset test set).",
    )
    lt.add_argument(
        "--out",
        default=None,
        help="image folder (default: $SFDA_DATA/digits-offline or ./data/digits-offline); the lists go to OUT/lists",
    )
    _image_args(lt)
    lt.set_defaults(func=_digits_lt)
    p.set_defaults(func=lambda a: p.print_help())
