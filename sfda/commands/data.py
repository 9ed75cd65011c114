"""sfda data digits-offline --out DIR: build the offline digits benchmark."""
from __future__ import annotations

from ..data import digits_offline


def _digits(a) -> int:
    out = a.out or digits_offline.default_root()
    if digits_offline.is_built(out) and not a.force:
        print(f"already built: {out} (use --force to rebuild)")
        return 0
    digits_offline.build(out, a.digits_png, allow_download=not a.no_download)
    print(f"built {out}; use it with data.root={out} or SFDA_DATA={out.parent if hasattr(out, 'parent') else out}")
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
