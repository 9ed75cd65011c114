#!/usr/bin/env python
"""The offline digits benchmark over seeds: source training once per (source domain, seed), then every
adaptation config, then the Markdown table written to docs/ with the command that made it.

    python benchmarks/digits.py                                   # SHOT and SHOT+NS-WS, both tasks, 3 seeds
    python benchmarks/digits.py --methods shot --tasks mnist5k_uci --seeds 2019
    python benchmarks/digits.py --out runs/digits-offline -- optim.epochs=10   # overrides after --

Finished runs are reused (rerunning is cheap and resumes interrupted runs).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sfda.data import digits_offline  # noqa: E402
from sfda.engine.runlog import setup_console  # noqa: E402
from sfda.engine.runner import run_both  # noqa: E402
from sfda.results.table import collect, render  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["shot", "shot_ns"], help="config folders under configs/digits/")
    ap.add_argument("--tasks", nargs="+", default=["mnist5k_uci", "uci_mnist5k"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[2019, 2020, 2021])
    ap.add_argument("--out", default="runs/digits-offline", help="output_root of the runs")
    ap.add_argument("--data", default=None, help="digits benchmark folder (built if missing)")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "results" / "digits-offline.md"), help="where the table goes")
    ap.add_argument("overrides", nargs="*", help="config overrides for every run (after --)")
    a = ap.parse_args(argv)
    setup_console()
    data = Path(a.data) if a.data else digits_offline.default_root()
    if not digits_offline.is_built(data):
        digits_offline.build(data)
    t0 = time.time()
    common = [f"data.root={data}", f"output_root={a.out}"] + a.overrides
    for seed in a.seeds:
        for task in a.tasks:
            for method in a.methods:
                cfg = ROOT / "configs" / "digits" / method / f"{task}.yaml"
                run_both(cfg, common + [f"seed={seed}"])
    runs = [r for r in collect(Path(a.out)) if r.get("benchmark") == "digits-offline" and r.get("stage") == "adapt"
            and r["seed"] in a.seeds and r["task"] in a.tasks]
    table = render(runs, "digits-offline")
    cmd = "python benchmarks/digits.py " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
    doc = Path(a.doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(f"<!-- written by benchmarks/digits.py -->\n{table}\n\nCommand: `{cmd.strip()}` "
                   f"({time.time() - t0:.0f} s for the runs that were not already finished).\n")
    print(table)
    print(f"written to {doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
