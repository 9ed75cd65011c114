"""sfda table RUNS_DIR: Markdown results tables from finished runs."""

from __future__ import annotations

from pathlib import Path

from ..errors import SfdaError
from ..results.per_seed import render_per_seed
from ..results.table import collect, render, select_runs


def run(a) -> int:
    root = Path(a.runs)
    if not root.is_dir():
        raise SfdaError(f"runs folder '{root}' not found")
    runs = select_runs(collect(root), a.stage)
    text = render(runs, a.benchmark, paper=not a.no_paper, std=not a.no_std)
    if a.per_seed and runs:
        text += "\n\n" + render_per_seed(runs, a.benchmark)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text + "\n")
    return 0


def register(sub):
    p = sub.add_parser(
        "table", help="Markdown tables (tasks x methods, mean ± std over seeds) with published numbers beside ours."
    )
    p.add_argument("runs", help="folder searched recursively for metrics.json")
    p.add_argument("--benchmark", help="only this benchmark")
    p.add_argument(
        "--stage",
        choices=["source", "adapt"],
        default=None,
        help="which runs to tabulate (default: adaptation runs, plus the source-stage runs of the "
        "supervised single-domain benchmarks: cifar, cifar-lt, digits-lt, imagenet, emotion)",
    )
    p.add_argument("--no-paper", action="store_true", help="leave out the published rows")
    p.add_argument("--no-std", action="store_true", help="means only")
    p.add_argument(
        "--per-seed",
        action="store_true",
        help="add a table of every run: one row per method and task, seeds as columns",
    )
    p.add_argument("--out", help="also write the table to this file")
    p.set_defaults(func=run)
