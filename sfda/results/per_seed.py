"""Per-seed tables (``sfda table --per-seed``): every finished run's score, one row per method and task with the
seeds as columns, then the mean ± std over them, the cross-dataset score where the benchmark has one (digits-LT:
UCI digits) and the mean wall time of the runs. What a results page lists under its summary table."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

from .paper import PAPER, task_display
from .table import run_label, run_score


def render_per_seed(runs: List[dict], benchmark: Optional[str] = None) -> str:
    by_bench: Dict[str, List[dict]] = defaultdict(list)
    for m in runs:
        by_bench[m.get("benchmark") or "?"].append(m)
    parts = [_bench_table(b, by_bench[b]) for b in sorted(by_bench) if not benchmark or b == benchmark]
    return "\n\n".join(parts) if parts else "no finished runs found"


def _bench_table(bench: str, runs: List[dict]) -> str:
    info = PAPER.get(bench, {})
    seeds = sorted({m["seed"] for m in runs})
    cell: Dict[Tuple[str, str], Dict[int, dict]] = defaultdict(dict)
    for m in runs:
        cell[(run_label(m), m["task"])][m["seed"]] = m
    known = list(info.get("tasks", []))
    tasks = [t for t in known if any(k[1] == t for k in cell)] + sorted({t for _, t in cell} - set(known))
    order = {label: i for i, label in enumerate(info.get("order", []))}
    labels = sorted({lab for lab, _ in cell}, key=lambda lab: (order.get(lab, len(order)), lab))
    cross = info.get("cross")
    head = ["method", "task"] + [f"seed {s}" for s in seeds] + ["mean ± std"]
    head += [f"{cross[0]} mean"] if cross else []
    head += ["wall s (mean)"]
    lines = [
        f"#### {bench}: every run (score %, per seed)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for task in tasks:
        for lab in labels:
            per_seed = cell.get((lab, task))
            if not per_seed:
                continue
            scores = [run_score(per_seed[s]) for s in seeds if s in per_seed]
            mean = statistics.fmean(scores)
            spread = f" ± {statistics.stdev(scores):.1f}" if len(scores) > 1 else ""
            row = [lab, info.get("display", {}).get(task, task_display(task))]
            row += [f"{run_score(per_seed[s]):.2f}" if s in per_seed else "" for s in seeds] + [f"{mean:.1f}{spread}"]
            if cross:
                other = [(m.get("source_only") or {}).get(cross[0]) for m in per_seed.values()]
                other = [v for v in other if v is not None]
                row.append(f"{statistics.fmean(other):.1f}" if other else "")
            walls = [m["wall_time_s"] for m in per_seed.values() if m.get("wall_time_s") is not None]
            row.append(f"{statistics.fmean(walls):.0f}" if walls else "")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
