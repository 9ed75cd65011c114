"""sfda plot-classes RUNS --benchmark B --task T --labels A B: per-class test accuracy of rows, mean over seeds
(a PNG, or with --markdown a table on stdout)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..data.lists import read_list
from ..errors import SfdaError
from ..results.per_class import plot_per_class, render_per_class
from ..results.table import collect


def run(a) -> int:
    root = Path(a.runs)
    if not root.is_dir():
        raise SfdaError(f"runs folder '{root}' not found")
    runs = [m for m in collect(root) if not a.seeds or m.get("seed") in a.seeds]
    if a.markdown:
        print(render_per_class(runs, a.benchmark, a.task, a.labels))
        return 0
    sizes = None
    if a.sizes_from:
        counts = Counter(e.label for e in read_list(a.sizes_from))
        sizes = [counts.get(k, 0) for k in range(max(counts) + 1)]
    out = Path(a.out) if a.out else root / f"{a.benchmark}_{a.task}_per_class.png"
    print(plot_per_class(runs, a.benchmark, a.task, a.labels, out, sizes))
    return 0


def register(sub):
    p = sub.add_parser(
        "plot-classes",
        help="PNG of the per-class test accuracy of some rows of a benchmark "
        "(mean over seeds), e.g. a baseline against NS-LF on a long tail.",
    )
    p.add_argument("runs", help="folder searched recursively for metrics.json")
    p.add_argument("--benchmark", required=True, help="e.g. digits-lt")
    p.add_argument("--task", required=True, help="the table column, e.g. imb100")
    p.add_argument("--labels", nargs="+", required=True, help="row labels, e.g. Baseline NS-LF")
    p.add_argument(
        "--sizes-from",
        help="training list whose label counts annotate the classes (e.g. data_lists/digits-lt/train_imb100.txt)",
    )
    p.add_argument("--out", help="PNG file (default: RUNS/<benchmark>_<task>_per_class.png)")
    p.add_argument("--seeds", nargs="+", type=int, help="only the runs of these seeds (default: every seed)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table instead of drawing the PNG")
    p.set_defaults(func=run)
