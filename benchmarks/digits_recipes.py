#!/usr/bin/env python
"""Which LeNet recipe the offline digits benchmark ships: SHOT on MNIST-5k <-> UCI, seeds 2019-2021, one
table for three recipes (the decision rule and the outcome are in docs/digits-offline.md).

- ``shot-lenet``: SHOT's digit network and recipe as its code has them (``LeNetBase``: conv features
  straight into the 256-d bottleneck; no source augmentation);
- ``shot-lenet+aug``: the same network, the source images augmented as SHOT's code does for its small
  USPS source (random 28x28 crop after 4-pixel padding, rotation up to 10 degrees);
- ``fc500+aug``: LeNet with an extra 800 -> 500 fully-connected layer, source augmented (the recipe the
  benchmark shipped before this measurement).

    python benchmarks/digits_recipes.py --data /tmp/dd --out runs/digits-recipes

Finished runs are reused: rerunning is cheap and resumes interrupted runs.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import torch

from sfda.cli import report_errors
from sfda.data import digits_offline
from sfda.engine.runlog import setup_console
from sfda.engine.runner import run_both

ROOT = Path(__file__).resolve().parent.parent

# name -> (overrides of both stages, overrides of the source stage only)
RECIPES: Dict[str, Tuple[List[str], List[str]]] = {
    "shot-lenet": (["model.params.hidden=0"], ["data.transform=digits"]),
    "shot-lenet+aug": (["model.params.hidden=0"], ["data.transform=digits_aug"]),
    "fc500+aug": (["model.params.hidden=500"], ["data.transform=digits_aug"]),
}


def _cell(values: List[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f}" if values else ""
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def table(results: Dict[Tuple[str, str, int], dict], tasks: List[str], seeds: List[int]) -> str:
    lines = [
        "| recipe | task | "
        + " | ".join(f"seed {s}" for s in seeds)
        + " | mean ± std | source only (mean) | min/run |",
        "|---|---|" + "---|" * len(seeds) + "---|---|---|",
    ]
    for task in tasks:
        for name in RECIPES:
            rows = [results[(name, task, s)] for s in seeds if (name, task, s) in results]
            cells = []
            for s in seeds:
                r = results.get((name, task, s))
                cells.append(f"{r['accuracy']:.2f} ({r['source_only_accuracy']:.1f})" if r else "")
            acc = [r["accuracy"] for r in rows]
            src = [r["source_only_accuracy"] for r in rows]
            minutes = [float(r.get("wall_time_s", 0.0)) / 60 for r in rows]
            lines.append(
                f"| {name} | {task} | "
                + " | ".join(cells)
                + f" | {_cell(acc)} | {_cell(src)} | {statistics.mean(minutes) if minutes else 0:.1f} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["mnist5k_uci", "uci_mnist5k"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[2019, 2020, 2021])
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--out", default="runs/digits-recipes", help="output_root of the runs")
    ap.add_argument("--data", default=None, help="digits benchmark folder (built if missing)")
    ap.add_argument("--doc", default=None, help="also write the table to this Markdown file")
    ap.add_argument("overrides", nargs="*", help="config overrides for every run (after --)")
    a = ap.parse_args(argv)
    setup_console()
    data = digits_offline.ensure(a.data)
    t0 = time.time()
    results: Dict[Tuple[str, str, int], dict] = {}
    for seed in a.seeds:
        for task in a.tasks:
            for name in a.recipes:
                both, source_only = RECIPES[name]
                common = [f"data.root={data}", f"output_root={a.out}", f"seed={seed}"] + both + a.overrides
                r = run_both(ROOT / "configs" / "digits" / "shot" / f"{task}.yaml", common, source_only)
                if r is not None:
                    results[(name, task, seed)] = r
    text = table(results, a.tasks, a.seeds)
    cmd = "python benchmarks/digits_recipes.py " + " ".join(
        shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])
    )
    note = (
        f"Command: `{cmd.strip()}` ({torch.get_num_threads()} CPU thread(s); {time.time() - t0:.0f} s in this "
        "invocation, which reuses finished runs; min/run is the adaptation stage's wall time)."
    )
    print(text + "\n\n" + note)
    if a.doc:
        Path(a.doc).write_text(f"<!-- written by benchmarks/digits_recipes.py -->\n{text}\n\n{note}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(report_errors(main))  # a bad value, a folder in use by another run: one line, exit 2
