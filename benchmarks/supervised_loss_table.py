"""The supervised-loss table of docs/loss-comparison.md: LeNet trained on MNIST-5k with each loss (the source
runs of configs/digits/source/mnist5k.yaml plus configs/digits/variants/source_<loss>.yaml): accuracy on its
validation split and source-only accuracy on UCI, read from the runs' metrics.json (mean ± sample std).

    python benchmarks/supervised_loss_table.py OUTPUT_ROOT
"""

import json
import statistics
import sys
from pathlib import Path

ROWS = {
    "LS 0.1 (SHOT's recipe)": "mnist5k",
    "CE": "mnist5k+source_ce",
    "NGL (summed over classes)": "mnist5k+source_ngl",
    "EDL-style (shipped file)": "mnist5k+source_learned",
}


def cell(values):
    if len(values) > 1:
        return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"
    return f"{values[0]:.1f}"


def main(output_root: str) -> None:
    root = Path(output_root) / "digits" / "source"
    print("| supervised loss | seeds | MNIST-5k validation | UCI (source only) |\n|---|---|---|---|")
    for label, name in ROWS.items():
        runs = [json.loads(f.read_text()) for f in sorted((root / name).glob("seed*/metrics.json"))]
        runs = [m for m in runs if m.get("finished")]
        if runs:
            seeds = ", ".join(str(m["seed"]) for m in runs)
            print(
                f"| {label} | {seeds} | {cell([m['val_accuracy'] for m in runs])} | "
                f"{cell([m['source_only']['uci'] for m in runs])} |"
            )


if __name__ == "__main__":
    main(sys.argv[1])
