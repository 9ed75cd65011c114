"""sfda demo: the whole pipeline on a real domain shift, offline, on the CPU, in a few minutes.

Builds the offline digits benchmark if it is missing, trains a LeNet on MNIST-5k, and adapts it to the UCI
digits with SHOT and with SHOT + NS-WS; prints source-only, SHOT and SHOT+NS-WS accuracy.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..config import load_config
from ..data import digits_offline
from ..engine.runlog import log, setup_console
from ..engine.runner import run_dir, run_stage, source_config

STEPS = [("SHOT", "digits/shot/mnist5k_uci"), ("SHOT+NS-WS", "digits/shot_ns/mnist5k_uci")]


def run(a) -> int:
    setup_console()
    t0 = time.time()
    data = Path(a.data) if a.data else digits_offline.default_root()
    if not digits_offline.is_built(data):
        log.info(f"[1/4] building the offline digits benchmark in {data}")
        digits_offline.build(data, a.digits_png, allow_download=not a.no_download, log=log.info)
    else:
        log.info(f"[1/4] offline digits benchmark found in {data}")
    common = [f"data.root={data}", f"output_root={a.out}", f"seed={a.seed}", "device=cpu" if a.cpu else "device=auto"]
    common += list(a.set or [])
    results = {}
    scfg = source_config(load_config(STEPS[0][1], common), common)
    log.info(f"[2/4] source training on MNIST-5k ({scfg.optim.epochs} epochs, LeNet)")
    src = run_stage(scfg)
    if src is None:
        return 1
    for i, (label, name) in enumerate(STEPS, 3):
        log.info(f"[{i}/4] {label} on MNIST-5k -> UCI")
        cfg = load_config(name, common)
        cfg["_source_dir"] = str(run_dir(scfg))  # the source model trained above
        m = run_stage(cfg)
        if m is None:
            return 1
        results[label] = m
    first = results["SHOT"]
    rows = [("Source only", first["source_only_accuracy"])] + [(k, v["accuracy"]) for k, v in results.items()]
    print()
    print(f"MNIST-5k -> UCI digits, seed {a.seed} (accuracy on the 1797 UCI digits, %)")
    print()
    print("| method | accuracy |")
    print("|---|---|")
    for k, v in rows:
        print(f"| {k} | {v:.1f} |")
    print()
    print(f"runs, logs and metrics.json files: {Path(a.out).resolve()}  ({time.time() - t0:.0f} s)")
    print(f"more seeds: python benchmarks/digits.py   |   table: sfda table {a.out}")
    return 0


def register(sub):
    p = sub.add_parser("demo", help="Offline CPU demo: source training, SHOT and SHOT+NS-WS on MNIST-5k -> UCI digits.")
    p.add_argument("--out", default="runs/demo", help="folder for the runs (default: runs/demo)")
    p.add_argument(
        "--data",
        default=None,
        help="digits benchmark folder (default: $SFDA_DATA/digits-offline or ./data/digits-offline)",
    )
    p.add_argument("--digits-png", default=None, help="path to OpenCV's digits.png if it is not found automatically")
    p.add_argument("--no-download", action="store_true", help="never use the network to find digits.png")
    p.add_argument("--seed", type=int, default=2019)
    p.add_argument("--cpu", action="store_true", help="force the CPU even if a GPU is available")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="overrides for every stage (e.g. optim.epochs=5)")
    p.set_defaults(func=run)
