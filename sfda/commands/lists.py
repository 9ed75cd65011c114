"""sfda lists make | verify"""

from __future__ import annotations

from pathlib import Path

from ..config import load_config
from ..data.formats import build_format
from ..data.lists import classes_from_list, list_name, make_domain_list, read_list, write_list
from ..data.verify import KNOWN_COUNTS, missing_list_hint, verify_domain
from ..errors import DataError


def _make(a) -> int:
    root = Path(a.root)
    if not root.is_dir():
        raise DataError(f"--root '{root}' is not a folder")
    domains = a.domains or sorted(
        d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name != "lists"
    )
    classes = classes_from_list(read_list(a.classes_from)) if a.classes_from else None
    out = Path(a.out) if a.out else root / "lists"
    for d in domains:
        entries = make_domain_list(root, d, classes, case_sensitive=a.case_sensitive)
        dest = out / f"{list_name(d)}.txt"
        write_list(entries, dest)
        n_cls = len({e.label for e in entries})
        print(f"{dest}: {len(entries)} images, {n_cls} classes")
    return 0


def _verify(a) -> int:
    cfg = load_config(a.config, [f"data.root={a.root}"] if a.root else [])
    data_format = build_format(cfg)
    domains = a.domains or list(cfg.data.domains) or [d for d in (cfg.data.source, cfg.data.target) if d]
    if not hasattr(data_format, "list_file"):
        raise DataError(
            f"data.format '{cfg.data.format}' does not read data lists; `sfda lists verify` checks list-based configs"
        )
    known = KNOWN_COUNTS.get(cfg.benchmark, {})
    all_ok = True
    for d in domains:
        f = data_format.list_file(d)
        if not f.exists():
            hint = missing_list_hint(cfg.benchmark, d, str(data_format.root))
            print(f"{f}: list not found" + (f"\n  hint: {hint}" if hint else "") + "\n  PROBLEMS FOUND")
            all_ok = False
            continue
        rep = verify_domain(data_format.root, f, data_format.num_classes, known.get(d), deep=a.deep)
        print(rep.render())
        all_ok &= rep.ok
    print("all domains OK" if all_ok else "problems found (see above)")
    return 0 if all_ok else 1


def register(sub):
    p = sub.add_parser("lists", help="Make data lists from a class-folder tree, or verify a dataset copy.")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    m = s.add_parser(
        "make",
        help="Write <domain>.txt lists (relative paths, benchmark class order) from ROOT/<domain>/<class>/<image>.",
    )
    m.add_argument("--root", required=True, help="dataset root holding one folder per domain")
    m.add_argument("--domains", nargs="*", help="domain folders (default: every folder in ROOT)")
    m.add_argument("--out", help="output folder (default: ROOT/lists)")
    m.add_argument(
        "--case-sensitive",
        action="store_true",
        help="plain sort of class names (default: case-insensitive, as Office-Home)",
    )
    m.add_argument("--classes-from", help="take the class order from an existing list (DomainNet-126)")
    m.set_defaults(func=_make)
    v = s.add_parser(
        "verify", help="Check images, counts, labels and folder names of a dataset against a config's lists."
    )
    v.add_argument("--root", help="dataset root (default: the config's data.root or $SFDA_DATA/<dataset_dir>)")
    v.add_argument("-c", "--config", required=True)
    v.add_argument("--domains", nargs="*", help="domains to check (default: data.domains)")
    v.add_argument("--deep", action="store_true", help="also decode every image (slow)")
    v.set_defaults(func=_verify)
    p.set_defaults(func=lambda a: p.print_help())
