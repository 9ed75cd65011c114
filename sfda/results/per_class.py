"""Per-class test accuracy of finished runs, averaged over seeds, as grouped bars (one group per class, one bar
per row label), with each class's training-set size from the run history: the figure that shows where a
long-tail method helps (the tail classes) and where it costs (the head classes)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..errors import SfdaError
from .plots import _plt, _save
from .table import run_score


def _row_runs(runs: Sequence[dict], benchmark: str, task: str, label: str) -> List[dict]:
    """The finished runs of one row: ``label`` on ``benchmark`` / ``task``, with per-class accuracies."""
    mine = [
        m
        for m in runs
        if m.get("benchmark") == benchmark
        and m.get("task") == task
        and m.get("label") == label
        and m.get("per_class_accuracy")
    ]
    if not mine:
        found = sorted({m.get("label", "?") for m in runs if m.get("benchmark") == benchmark and m.get("task") == task})
        raise SfdaError(f"no finished {benchmark} run '{label}' on task {task}; found: {', '.join(found) or 'none'}")
    return mine


def per_class_means(runs: Sequence[dict], benchmark: str, task: str, labels: Sequence[str]) -> Dict[str, List[float]]:
    """{label: per-class accuracy averaged over the seeds} of the runs of ``benchmark`` / ``task``."""
    out: Dict[str, List[float]] = {}
    for label in labels:
        accs = [m["per_class_accuracy"] for m in _row_runs(runs, benchmark, task, label)]
        out[label] = [statistics.fmean(float(a[k]) for a in accs if a[k] is not None) for k in range(len(accs[0]))]
    return out


def render_per_class(runs: Sequence[dict], benchmark: str, task: str, labels: Sequence[str]) -> str:
    """A Markdown table of :func:`per_class_means`: one row per label (in the given order) with its score
    averaged over the seeds, then its per-class accuracy, rounded to whole percent."""
    means = per_class_means(runs, benchmark, task, labels)
    k = len(next(iter(means.values())))
    lines = [
        "| method | seeds | score | " + " | ".join(str(c) for c in range(k)) + " |",
        "|---|---|---|" + "---|" * k,
    ]
    for label, acc in means.items():
        mine = _row_runs(runs, benchmark, task, label)
        score = statistics.fmean(float(run_score(m)) for m in mine)
        cells = " | ".join(f"{a:.0f}" for a in acc)
        lines.append(f"| {label} | {len(mine)} | {score:.1f} | {cells} |")
    return "\n".join(lines)


def plot_per_class(
    runs: Sequence[dict],
    benchmark: str,
    task: str,
    labels: Sequence[str],
    out: Path,
    class_sizes: Optional[Sequence[int]] = None,
) -> Path:
    """Grouped bars of :func:`per_class_means`; ``class_sizes`` (training images per class) label the x axis."""
    means = per_class_means(runs, benchmark, task, labels)
    seeds = {
        lab: sorted(
            m["seed"]
            for m in runs
            if m.get("benchmark") == benchmark and m.get("task") == task and m.get("label") == lab
        )
        for lab in labels
    }
    plt = _plt()
    k = len(next(iter(means.values())))
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * k + 1.5), 3.2))
    for i, (label, acc) in enumerate(means.items()):
        ax.bar(
            [c - 0.4 + width * (i + 0.5) for c in range(k)],
            acc,
            width,
            label=f"{label} (mean {statistics.fmean(acc):.1f}, {len(seeds[label])} seeds)",
        )
    ticks = [f"{c}\n{class_sizes[c]}" for c in range(k)] if class_sizes else [str(c) for c in range(k)]
    ax.set_xticks(range(k), ticks, fontsize=8)
    ax.set_xlabel("class (training images)" if class_sizes else "class")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 125)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(f"{benchmark} {task}: per-class test accuracy", fontsize=10)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    out.parent.mkdir(parents=True, exist_ok=True)
    return _save(plt, fig, out)
