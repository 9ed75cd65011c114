"""Collect finished runs (``metrics.json``) and render Markdown tables: one per benchmark, methods as rows,
tasks as columns, mean ± standard deviation over seeds, with the published numbers beside ours.

Domain-adaptation benchmarks tabulate adaptation runs (with a source-only row and an average column);
supervised single-domain benchmarks (``layout: "single"`` in :mod:`sfda.results.paper`: CIFAR, CIFAR-LT, digits-LT,
ImageNet-1K, visual emotion) tabulate their source-stage runs: test accuracy with datasets or imbalance
factors as columns and backbones or methods as rows, without an average column."""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

from .paper import (
    FOUNDATION_GROUP,
    FOUNDATION_METHODS,
    FOUNDATION_SOURCES,
    NOTES,
    PAPER,
    is_single_domain,
    task_display,
)


def collect(root: Path, warn=None) -> List[dict]:
    """Finished runs under ``root``. A ``metrics.json`` that cannot be read is named (``warn``, default: a
    warning line on stderr), never silently dropped."""
    runs = []
    for f in sorted(Path(root).rglob("metrics.json")):
        try:
            m = json.loads(f.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            note = f"warning: cannot read {f} ({type(e).__name__}); its run is left out of the table"
            (warn or (lambda text: print(text, file=sys.stderr)))(note)
            continue
        if m.get("finished"):
            m["_dir"] = str(f.parent)
            runs.append(m)
    return runs


def select_runs(runs: List[dict], stage: Optional[str] = None) -> List[dict]:
    """Runs of one stage, or (``stage=None``) the results of every benchmark: adaptation runs, plus the
    source-stage runs of supervised single-domain benchmarks."""
    if stage:
        return [r for r in runs if r.get("stage") == stage]
    return [r for r in runs if r.get("stage") != "source" or is_single_domain(r.get("benchmark") or "")]


def run_label(m: dict) -> str:
    """A run's row name: its label, else its method."""
    return m.get("label") or m.get("method", "?")


def run_score(m: dict) -> float:
    """A run's score: the benchmark's metric (``score``), else its accuracy."""
    return m.get("score", m.get("accuracy"))


def _norm(label: str) -> str:
    return label.lower().replace(" ", "")


def _cell(values: List[float], show_std: bool = True) -> str:
    if not values:
        return ""
    mean = statistics.fmean(values)
    if len(values) > 1 and show_std:
        return f"{mean:.1f} ± {statistics.stdev(values):.1f}"
    return f"{mean:.1f}"


def _table_rows(runs: Iterable[dict]):
    """{label: {task: [scores over seeds]}} plus a source-only row from adaptation runs."""
    rows: Dict[str, Dict[str, Dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    source_only: Dict[str, Dict[int, float]] = defaultdict(dict)
    for m in runs:
        rows[run_label(m)][m["task"]][m["seed"]] = run_score(m)
        if m.get("stage") == "adapt":
            key = (
                "source_only_mean_class_accuracy"
                if m.get("metric") == "mean_class_accuracy"
                else "source_only_accuracy"
            )
            if m.get(key) is not None:
                source_only[m["task"]][m["seed"]] = m[key]
    out = {label: {t: list(s.values()) for t, s in tasks.items()} for label, tasks in rows.items()}
    if source_only and "Source only" not in out:
        out = {"Source only": {t: list(s.values()) for t, s in source_only.items()}, **out}
    return out


def render(runs: List[dict], benchmark: Optional[str] = None, paper: bool = True, std: bool = True) -> str:
    by_bench: Dict[str, List[dict]] = defaultdict(list)
    for m in runs:
        by_bench[m.get("benchmark") or "?"].append(m)
    parts = []
    for bench in sorted(by_bench):
        if benchmark and bench != benchmark:
            continue
        parts.append(render_benchmark(bench, by_bench[bench], paper, std))
    return "\n\n".join(parts) if parts else "no finished runs found"


def render_benchmark(bench: str, runs: List[dict], paper: bool = True, std: bool = True) -> str:
    info = PAPER.get(bench, {"tasks": [], "rows": []})
    if info.get("layout") == "single":
        return render_single(bench, runs, info, paper, std)
    rows = _table_rows(runs)
    seen = {t for r in rows.values() for t in r}
    tasks = [t for t in info["tasks"] if t in seen] + sorted(seen - set(info["tasks"]))
    full = [t for t in info["tasks"]] if info["tasks"] else tasks
    complete_set = set(full) <= seen
    metric = runs[0].get("metric", "accuracy")
    seeds = sorted({m["seed"] for m in runs})
    head = ["method"] + [task_display(t) for t in tasks] + ["avg"]
    ours = {}
    for label, per_task in rows.items():
        cells = [_cell(per_task.get(t, []), std) for t in tasks]
        means = [statistics.fmean(per_task[t]) for t in tasks if per_task.get(t)]
        n_tasks = sum(1 for t in tasks if per_task.get(t))
        avg = f"{statistics.fmean(means):.1f}" if means else ""
        if avg and (n_tasks < len(full) or not complete_set):
            avg += f" ({n_tasks}/{len(full)} tasks)"
        ours[label] = _md_row([f"**{label}** (ours)"] + cells + [avg])

    def paper_line(label: str, source: str, vals: dict) -> str:
        avg = f"{vals['avg']:.1f}" if "avg" in vals else ""
        return _md_row([f"{label} ({source})"] + _paper_cells(vals, tasks) + [avg])

    title = f"### {bench} ({metric}, %; ours: mean ± std over seeds {', '.join(map(str, seeds))})"
    foundation = {run_label(m) for m in runs if m.get("method") in FOUNDATION_METHODS}
    body = _with_paper_rows(ours, info["rows"] if paper else [], paper_line, foundation=foundation, width=len(head))
    return "\n".join(_header(title, head) + body)


def _md_row(cells: List[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(title: str, head: List[str]) -> List[str]:
    return [title, "", _md_row(head), "|" + "---|" * len(head)]


def _paper_cells(vals: dict, tasks: List[str]) -> List[str]:
    return [f"{vals[t]:.1f}" if t in vals else "" for t in tasks]


def _with_paper_rows(
    ours: Dict[str, str],
    paper_rows: list,
    paper_line: Callable[[str, str, dict], str],
    keep_unmatched: Callable[[dict], bool] = lambda vals: True,
    foundation: Iterable[str] = (),
    width: int = 0,
) -> List[str]:
    """Each of our rows (label -> Markdown line) followed by the published rows of the same label, then the
    published rows that matched none of ours (those with ``keep_unmatched(values)``). Foundation-model-assisted
    rows (our labels in ``foundation``, published rows of ``FOUNDATION_SOURCES``) follow as a separate group under
    a marked row (``width`` cells)."""
    fm = set(foundation)
    groups = [
        ({k: v for k, v in ours.items() if k not in fm}, [r for r in paper_rows if r[1] not in FOUNDATION_SOURCES]),
        ({k: v for k, v in ours.items() if k in fm}, [r for r in paper_rows if r[1] in FOUNDATION_SOURCES]),
    ]
    lines: List[str] = []
    for n, (group, rows) in enumerate(groups):
        body = _group_rows(group, rows, paper_line, keep_unmatched)
        if n == 1 and body:
            lines.append(_md_row([f"*{FOUNDATION_GROUP}*"] + [""] * max(width - 1, 0)))
        lines += body
    notes = dict.fromkeys(src for _, src, _ in paper_rows if src in NOTES)
    lines += [""] * bool(notes) + [f"Note ({src}): {NOTES[src]}" for src in notes]
    return lines


def _group_rows(
    ours: Dict[str, str], paper_rows: list, paper_line: Callable[[str, str, dict], str], keep_unmatched
) -> List[str]:
    lines, used = [], set()
    for label, line in ours.items():
        lines.append(line)
        for i, (plabel, src, vals) in enumerate(paper_rows):
            if _norm(plabel) == _norm(label):
                used.add(i)
                lines.append(paper_line(plabel, src, vals))
    for i, (plabel, src, vals) in enumerate(paper_rows):
        if i not in used and keep_unmatched(vals):
            lines.append(paper_line(plabel, src, vals))
    return lines


def render_single(bench: str, runs: List[dict], info: dict, paper: bool = True, std: bool = True) -> str:
    """A supervised single-domain benchmark: columns are its datasets / imbalance factors (the runs' tasks),
    rows its backbones or methods (the runs' labels); published rows of the same label follow ours.
    ``info`` may add ``order`` (row labels first, in this order), ``cross`` ((key, title): a second table of
    the runs' ``source_only[key]`` scores), ``reference`` (published rows of another benchmark, a table of
    their own) and ``seed_counts`` (cells with fewer seeds than the table say how many)."""
    seeds = sorted({m["seed"] for m in runs})
    metric = runs[0].get("metric", "accuracy")
    title = f"### {bench} ({metric} on the held-out split, %; ours: mean ± std over seeds {', '.join(map(str, seeds))})"
    n_seeds = len(seeds) if info.get("seed_counts") else 0
    parts = [_single_table(title, _single_rows(runs, info), info, info["rows"] if paper else [], std, n_seeds)]
    if info.get("cross"):
        key, what = info["cross"]
        cross = _single_rows(runs, info, key)
        if cross:
            parts.append(_single_table(f"#### {bench}: {what}", cross, info, [], std, n_seeds))
    ref = info.get("reference")
    if paper and ref:
        rows = [r for r in PAPER[ref["bench"]]["rows"] if any(t in r[2] for t in ref["tasks"])]
        head = ["method"] + [ref["display"].get(t, t) for t in ref["tasks"]]
        lines = [f"#### {ref['title']}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        parts.append("\n".join(lines + [_paper_single(label, src, vals, ref["tasks"]) for label, src, vals in rows]))
    return "\n\n".join(parts)


def _single_rows(runs: List[dict], info: dict, cross: Optional[str] = None) -> Dict[str, Dict[str, Dict[int, float]]]:
    """{label: {task: {seed: score}}}: the runs' scores, or their ``source_only[cross]`` scores; rows in
    ``info['order']`` first."""
    rows: Dict[str, Dict[str, Dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for m in runs:
        score = (m.get("source_only") or {}).get(cross) if cross else run_score(m)
        if score is not None:
            rows[run_label(m)][m["task"]][m["seed"]] = score
    order = {label: i for i, label in enumerate(info.get("order", []))}
    return dict(sorted(rows.items(), key=lambda kv: order.get(kv[0], len(order))))


def _single_table(
    title: str, rows: Dict[str, Dict[str, Dict[int, float]]], info: dict, paper_rows: list, std: bool, n_seeds: int
) -> str:
    seen = {t for r in rows.values() for t in r}
    tasks = [t for t in info["tasks"] if t in seen] + sorted(seen - set(info["tasks"]))
    names = info.get("display", {})
    head = ["method"] + [names.get(t, t) for t in tasks]
    ours = {
        label: _md_row(
            [f"**{label}** (ours)"]
            + [_seeds_cell(list(per_task[t].values()), std, n_seeds) if t in per_task else "" for t in tasks]
        )
        for label, per_task in rows.items()
    }

    def paper_line(label: str, source: str, vals: dict) -> str:
        return _md_row([f"{label} ({source})"] + _paper_cells(vals, tasks))

    return "\n".join(
        _header(title, head)
        + _with_paper_rows(ours, paper_rows, paper_line, lambda vals: any(t in vals for t in tasks))
    )


def _seeds_cell(values: List[float], std: bool, n_seeds: int) -> str:
    """Mean ± std, and the number of seeds when the cell has fewer than the table."""
    cell = _cell(values, std)
    return cell + (f" ({len(values)} seed{'s' if len(values) > 1 else ''})" if len(values) < n_seeds else "")


def _paper_single(label, source, vals, tasks) -> str:
    return _md_row([f"{label} ({source})"] + _paper_cells(vals, tasks))
