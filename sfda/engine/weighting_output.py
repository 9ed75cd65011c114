"""Where a weighter's end-of-epoch report goes: its statistics into the epoch record (and the history), its
histograms and scalars to the run log (TensorBoard), and the per-sample arrays of the first and the last epoch
into a file of the run directory (NS: ``ns_scores.pt`` = ``{"first": ..., "last": ...}``, read by ``sfda plot``).
The kept arrays are part of the resume state, so a resumed run writes the same file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from ..models.checkpoint import atomic_save
from ..weighting.base import WeightingReport


class WeightingOutput:
    def __init__(self, run_dir: Path, runlog: Any, epochs: int):
        self.run_dir = Path(run_dir)
        self.log = runlog
        self.epochs = epochs
        self.kept: Dict[str, Dict[str, Any]] = {}  # file name -> {"first": arrays, "last": arrays}

    def keeps_samples(self, epoch: int) -> bool:
        """Per-sample arrays are kept for the first and the last epoch."""
        return epoch in (0, self.epochs - 1)

    def record(self, epoch: int, report: WeightingReport) -> Dict[str, float]:
        """Log and keep ``report`` (of 0-based ``epoch``); return its statistics for the epoch record."""
        step = epoch + 1
        for tag, values in report.histograms.items():
            self.log.histogram(tag, values, step)
        if report.scalars:
            self.log.scalars(report.scalars, step)
        if report.samples is not None and report.samples_file:
            kept = self.kept.setdefault(report.samples_file, {})
            kept["first" if epoch == 0 else "last"] = report.samples
            atomic_save(kept, self.run_dir / report.samples_file)
        return dict(report.stats)

    def state_dict(self) -> Dict[str, Any]:
        return {"kept": self.kept}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.kept = dict(state.get("kept", {}))
