"""Figures from a run's NS scores (``ns_scores.pt``, written by the NS weighter) and its metrics.

- ``ns_class_boxplot.png``: NS scores per (pseudo-)label class (paper Fig. 3);
- ``ns_sorted_weights.png``: sorted weights w = sigma + s (WS) and w = sigma' - s (LF) from the same scores
  (paper Fig. 2);
- ``ns_class_vs_size.png`` / ``ns_class_vs_accuracy.png``: per-class mean NS score against class size and
  class accuracy, with the least-squares line and Pearson's r (paper Fig. 4).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import torch

from ..errors import SfdaError

MATPLOTLIB_MISSING = (
    '`sfda plot` needs matplotlib, which is not installed: pip install matplotlib, or pip install -e ".[plot]"'
)


def _plt() -> Any:
    """matplotlib.pyplot with the file-only Agg backend; matplotlib is optional (the ``plot`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SfdaError(MATPLOTLIB_MISSING) from None
    return plt


def pearson(x: List[float], y: List[float]) -> float:
    tx, ty = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    tx, ty = tx - tx.mean(), ty - ty.mean()
    den = (tx.norm() * ty.norm()).item()
    return float((tx @ ty).item() / den) if den > 0 else float("nan")


def load_scores(run: Path, which: str = "last") -> dict:
    f = Path(run) / "ns_scores.pt"
    if not f.is_file():
        raise SfdaError(
            f"'{f}' not found: `sfda plot` needs a run trained with weighting.name=ns (and weighting.save_scores=true)"
        )
    saved = torch.load(f, map_location="cpu", weights_only=False)
    if which not in saved:
        raise SfdaError(f"'{f}' has no '{which}' epoch (it has: {', '.join(saved)})")
    return saved[which]


def class_means(scores: torch.Tensor, targets: torch.Tensor) -> Dict[int, float]:
    return {int(k): scores[targets == k].mean().item() for k in targets.unique()}


def plot_run(run: Path, out: Path, which: str = "last") -> List[Path]:
    d = load_scores(run, which)
    plt = _plt()
    s, t = d["scores"].float(), d["targets"].long()
    sigma, m = float(d["sigma"]), int(d["m"])
    out.mkdir(parents=True, exist_ok=True)
    files = []
    classes = sorted(int(k) for k in t.unique())

    fig, ax = plt.subplots(figsize=(max(6, 0.25 * len(classes) + 2), 3.5))
    ax.boxplot([s[t == k].numpy() for k in classes], showfliers=False)
    ax.set_xticks(range(1, len(classes) + 1), [str(k) for k in classes], fontsize=7 if len(classes) > 20 else 9)
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax.set_xlabel("(pseudo-)label class")
    ax.set_ylabel("NS score s")
    ax.set_title(f"NS scores per class (epoch {d['epoch']}, m={m})")
    files.append(_save(plt, fig, out / "ns_class_boxplot.png"))

    fig, ax = plt.subplots(figsize=(5, 3.5))
    srt = torch.sort(s, descending=True).values
    # the run's own sigma for its own rule; the paper's settings for the other (WS 0.6; LF 2.5 at m=2, 1.5 at m=4)
    ws_sigma = sigma if d["rho"] > 0 else 0.6
    lf_sigma = sigma if d["rho"] < 0 else (2.5 if m == 2 else 1.5)
    ax.plot((ws_sigma + srt).numpy(), label=f"WS: {ws_sigma:g} + s")
    ax.plot((lf_sigma - srt).clamp_min(0).numpy(), label=f"LF: max(0, {lf_sigma:g} - s)")
    ax.set_xlabel("samples sorted by NS score")
    ax.set_ylabel("weight")
    ax.legend()
    ax.set_title("Sorted sample weights")
    files.append(_save(plt, fig, out / "ns_sorted_weights.png"))

    means = class_means(s, t)
    sizes = {k: int((t == k).sum()) for k in means}
    metrics = {}
    mf = Path(run) / "metrics.json"
    if mf.is_file():
        metrics = json.loads(mf.read_text())
    panels = [("size", "class size (samples with this label)", sizes)]
    acc = metrics.get("per_class_accuracy")
    if acc:
        panels.append(
            ("accuracy", "class accuracy (%)", {k: acc[k] for k in means if k < len(acc) and acc[k] is not None})
        )
    for key, xlabel, xs in panels:
        ks = [k for k in means if k in xs]
        x, y = [float(xs[k]) for k in ks], [means[k] for k in ks]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.scatter(x, y, s=14)
        r = pearson(x, y) if len(x) > 2 else float("nan")
        if len(x) > 1 and max(x) > min(x):
            X = torch.tensor(x, dtype=torch.float64)
            A = torch.stack([X, torch.ones_like(X)], 1)
            coef = torch.linalg.lstsq(A, torch.tensor(y, dtype=torch.float64).unsqueeze(1)).solution.flatten()
            xx = torch.linspace(min(x), max(x), 50, dtype=torch.float64)
            ax.plot(xx.numpy(), (coef[0] * xx + coef[1]).numpy(), color="C1")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean NS score")
        ax.set_title(f"Per-class mean NS score vs {key} (r = {r:.2f})")
        files.append(_save(plt, fig, out / f"ns_class_vs_{key}.png"))
    return files


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
