"""sfda plot RUN: NS figures (per-class score box plots, sorted weights, per-class score vs size/accuracy)."""

from __future__ import annotations

from pathlib import Path

from ..results.plots import plot_run


def run(a) -> int:
    run_dir = Path(a.run)
    out = Path(a.out) if a.out else run_dir / "plots"
    for f in plot_run(run_dir, out, a.epoch):
        print(f)
    return 0


def register(sub):
    p = sub.add_parser("plot", help="PNG figures of a run's NS scores (needs weighting.name=ns).")
    p.add_argument("run", help="run folder (with ns_scores.pt and metrics.json)")
    p.add_argument("--epoch", choices=["first", "last"], default="last", help="which saved epoch to plot")
    p.add_argument("--out", help="output folder (default: RUN/plots)")
    p.set_defaults(func=run)
