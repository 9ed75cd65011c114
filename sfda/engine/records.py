"""What a run records per epoch, and the ``history`` of ``metrics.json`` built from it.

Epoch k (0-based) starts from the weights after k epochs and trains them into the weights after k + 1. Its
:class:`EpochRecord` holds the evaluation of the starting weights (adaptation evaluates before each epoch),
the method's statistics from that pass, the epoch's training logs, the weighter's statistics, the evaluation
of the trained weights (supervised training evaluates after each epoch) and the time it took.

``history`` entry i describes the weights after i epochs: the epoch that trained them (logs, ``w_``-prefixed
weighter statistics, evaluation after the epoch, time) and then the evaluation that starts the next epoch (or,
for the last entry of an adaptation run, the final evaluation), with the method's statistics.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

EVAL_KEYS = ("accuracy", "mean_class_accuracy")  # the evaluation numbers kept in the history


def eval_summary(metrics: Dict[str, Any]) -> Dict[str, float]:
    """The evaluation numbers of :func:`~sfda.engine.evaluate.classification_metrics` kept in the history."""
    return {key: metrics[key] for key in EVAL_KEYS}


@dataclass
class EpochRecord:
    epoch: int  # 0-based
    start_eval: Dict[str, float] = field(default_factory=dict)  # the starting weights (BEFORE_EACH_EPOCH)
    method_stats: Dict[str, Any] = field(default_factory=dict)  # method.on_epoch_start's statistics
    train_logs: Dict[str, float] = field(default_factory=dict)  # averaged over the epoch's steps; lr
    weighting: Dict[str, float] = field(default_factory=dict)  # the weighter's statistics
    end_eval: Dict[str, float] = field(default_factory=dict)  # the trained weights (AFTER_EACH_EPOCH)
    time_s: float = 0.0

    def opening(self) -> Dict[str, Any]:
        """What the history says about the starting weights."""
        return {**self.start_eval, **self.method_stats}

    def closing(self) -> Dict[str, Any]:
        """What the history says about the epoch that produced the trained weights."""
        return {
            **self.train_logs,
            **{f"w_{k}": v for k, v in self.weighting.items()},
            **self.end_eval,
            "time_s": self.time_s,
        }

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def history(records: List[EpochRecord], final_eval: Optional[Dict[str, float]] = None) -> List[Dict[str, Any]]:
    """Entry i = the weights after i epochs (see the module docstring); ``final_eval`` completes the last one."""
    entries = []
    for trained_by, opened_by in zip([None, *records], [*records, None]):
        entry: Dict[str, Any] = {"epoch": 0 if trained_by is None else trained_by.epoch + 1}
        if trained_by is not None:
            entry.update(trained_by.closing())
        entry.update(opened_by.opening() if opened_by is not None else (final_eval or {}))
        entries.append(entry)
    return entries


@dataclass
class BestWeights:
    """With ``select_best``: the best evaluation score so far, the epoch count that reached it, the weights."""

    score: float = -math.inf
    epoch: int = 0
    state: Optional[Dict[str, Any]] = None

    def to_dict(self) -> Dict[str, Any]:
        return {"score": self.score, "epoch": self.epoch, "state": self.state}


@dataclass
class FitResult:
    history: List[Dict[str, Any]]
    final: Dict[str, Any]  # classification_metrics of the weights the run ends with
    best_epoch: int
    earlier_wall_s: float = 0.0  # wall time of the earlier invocations of a resumed run, to their last saved epoch


def epoch_line(boundary: Dict[str, Any], after: Dict[str, Any], epochs: int, evaluated_before: bool) -> str:
    """The console line of an epoch: ``boundary`` is the history entry of its starting weights (with their
    evaluation when ``evaluated_before``), ``after`` the entry of its training."""
    parts = [f"epoch {after['epoch']}/{epochs}"]
    if "pl_accuracy" in boundary:
        parts.append(f"pl_acc {boundary['pl_accuracy']:.2f}")
    for k, v in after.items():
        if k == "epoch" or not isinstance(v, (int, float)):
            continue
        parts.append(f"{k} {v:.4g}" if k != "accuracy" else f"acc {v:.2f}")
    if evaluated_before and "accuracy" in boundary:
        parts.insert(1, f"acc@{boundary['epoch']} {boundary['accuracy']:.2f}")
    return "  ".join(parts)
