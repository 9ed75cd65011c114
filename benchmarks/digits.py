#!/usr/bin/env python
"""The offline digits benchmark over seeds: source training once per (source domain, seed), then every
adaptation config, then the Markdown tables (summary and every run, with wall times), printed and, with
``--doc FILE``, written to FILE with the command that made them.

    python benchmarks/digits.py --doc docs/results/digits-offline.md   # SHOT and SHOT+NS-WS, both tasks, 3 seeds
    python benchmarks/digits.py --methods shot --tasks mnist5k_uci --seeds 2019
    python benchmarks/digits.py --out runs/digits-offline -- optim.epochs=10   # overrides after --
    python benchmarks/digits.py --variants conf ent beta03   # plus SHOT with configs/digits/variants/*.yaml merged
    python benchmarks/digits.py --methods shot aad --tasks mnist5k_uci --variants aad:aad_const
    python benchmarks/digits.py --source-set data.transform=digits_aug -- model.params.hidden=500  # the old recipe

Finished runs are reused (rerunning is cheap and resumes interrupted runs).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from sfda.cli import report_errors
from sfda.data import digits_offline
from sfda.engine.rundir import write_text_atomic
from sfda.engine.runlog import setup_console
from sfda.engine.runner import run_both
from sfda.results.per_seed import render_per_seed
from sfda.results.table import collect, render

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["shot", "shot_ns"], help="config folders under configs/digits/")
    ap.add_argument("--tasks", nargs="+", default=["mnist5k_uci", "uci_mnist5k"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[2019, 2020, 2021])
    ap.add_argument(
        "--variants",
        nargs="+",
        default=[],
        help="fragments in configs/digits/variants/, each merged on "
        "top of a method config for extra runs: NAME (onto --variants-on) or METHOD:NAME (e.g. conf ent "
        "aad:aad_const)",
    )
    ap.add_argument("--variants-on", default="shot", help="the method a bare variant NAME is merged onto")
    ap.add_argument("--no-plain", action="store_true", help="with --variants: skip the methods' own configs")
    ap.add_argument("--out", default="runs/digits-offline", help="output_root of the runs")
    ap.add_argument("--data", default=None, help="digits benchmark folder (built if missing)")
    ap.add_argument(
        "--doc",
        default=None,
        help="write the tables to this Markdown file (replacing it); without it they are only printed",
    )
    ap.add_argument(
        "--source-set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="overrides for the source stage only (as `sfda run --source-set`), e.g. data.transform=digits_aug",
    )
    ap.add_argument("overrides", nargs="*", help="config overrides for every run (after --)")
    a = ap.parse_args(argv)
    setup_console()
    data = digits_offline.ensure(a.data)
    variants = [tuple(v.split(":", 1)) if ":" in v else (a.variants_on, v) for v in a.variants]
    for m, v in variants:
        if m not in a.methods:
            ap.error(f"--variants {m}:{v}: method '{m}' is not in --methods")
        if not (ROOT / "configs" / "digits" / "variants" / f"{v}.yaml").is_file():
            ap.error(f"--variants: no configs/digits/variants/{v}.yaml")
    dirs = set()  # the run folders of this command: other runs under --out (another override) stay out
    t0 = time.time()
    common = [f"data.root={data}", f"output_root={a.out}"] + a.overrides
    for seed in a.seeds:
        for task in a.tasks:
            for method in a.methods:
                cfg = ROOT / "configs" / "digits" / method / f"{task}.yaml"
                stacks = [] if (a.variants and a.no_plain) else [[cfg]]
                stacks += [
                    [cfg, ROOT / "configs" / "digits" / "variants" / f"{v}.yaml"] for m, v in variants if m == method
                ]
                for files in stacks:
                    result = run_both(files, common + [f"seed={seed}"], a.source_set)
                    if result is not None:
                        dirs.add(Path(result["_dir"]).resolve())
    runs = [r for r in collect(Path(a.out)) if Path(r["_dir"]).resolve() in dirs]
    table = render(runs, "digits-offline") + "\n\n" + render_per_seed(runs, "digits-offline")
    run_time = sum(float(r.get("wall_time_s", 0.0)) for r in runs)
    cmd = "python benchmarks/digits.py " + " ".join(
        shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])
    )
    print(table)
    if a.doc is None:
        print("(not written to a file: add --doc FILE)")
        return 0
    doc = Path(a.doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        f"<!-- written by benchmarks/digits.py -->\n{table}\n\nCommand: `{cmd.strip()}` "
        f"({torch.get_num_threads()} CPU thread(s); {len(runs)} adaptation runs, {run_time / 60:.0f} min of adaptation "
        f"in all; {time.time() - t0:.0f} s in this invocation, which reused finished runs). CPU results depend "
        "on the number of threads (floating-point summation order).\n",
        doc,
    )
    print(f"written to {doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(report_errors(main))  # a bad value, a folder in use by another run: one line, exit 2
