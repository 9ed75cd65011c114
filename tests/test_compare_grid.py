"""The NS paper's Table IV grid: config fragments (labels = the paper's rows) and the grid scripts."""

import os
import subprocess
from pathlib import Path

import pytest

from sfda.config import load_config
from sfda.paths import PROJECT_ROOT
from sfda.results.paper import PAPER

PAPER_ROWS = [
    "Focal",
    "GCE",
    "LS",
    "NLNL",
    "SCE",
    "APL",
    "LOW",
    "PolyLoss",
    "ANL",
    "AUL",
    "CE+MAE",
    "CE+OGC",
    "CBS",
    "SRS",
    "PBS",
    "SHOT+NS-WS",
]
ADDED_ROWS = ["NGL", "EDL-style", "Baikal"]  # evolved and learned losses sfda adds (issue 15), not in the paper
ROWS = PAPER_ROWS + ADDED_ROWS
TASK = {"office-home": "configs/office-home/shot/Ar_Cl.yaml", "digits": "configs/digits/shot/mnist5k_uci.yaml"}


@pytest.mark.parametrize("bench", ["office-home", "digits"])
def test_fragments_merge_onto_a_task_config_with_the_papers_row_labels(bench):
    frags = sorted((PROJECT_ROOT / "configs" / bench / "compare").glob("*.yaml"))
    labels = {}
    for f in frags:
        cfg = load_config([PROJECT_ROOT / TASK[bench], f])
        labels[cfg.label] = cfg
        assert cfg.name == f"{bench}/shot/{Path(TASK[bench]).stem}+{f.stem}"
        assert cfg.method.name == "shot" and cfg.data.target == load_config(PROJECT_ROOT / TASK[bench]).data.target
        changed = [cfg.method.pl_loss.name != "ce", cfg.sampler.name != "none", cfg.weighting.name != "none"]
        assert sum(changed) == 1, (f, changed)  # exactly one thing differs from SHOT
    assert sorted(labels) == sorted(ROWS)
    paper = {label for label, _, _ in PAPER["office-home"]["rows"]}
    assert set(PAPER_ROWS) <= paper and not set(ADDED_ROWS) & paper


def test_grid_scripts_list_every_run(tmp_path):
    for script, n_tasks in (("office_home_compare.sh", 12), ("digits_compare.sh", 1)):
        env = {**os.environ, "SFDA": "echo"}
        out = subprocess.run(
            ["bash", str(PROJECT_ROOT / "scripts" / script), "2019", "2020", "device=cpu"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        runs = [line for line in out.splitlines() if line.startswith("run ")]
        assert len(runs) == 2 * n_tasks * 20  # SHOT + 12 losses + 3 samplers + NS-WS + 3 added losses
        assert all("device=cpu" in r for r in runs) and sum("seed=2020" in r for r in runs) == n_tasks * 20
        assert out.splitlines()[-1].startswith("table ")
        for r in runs:  # every config the script names exists
            for c in r.split()[1:]:
                if c.endswith(".yaml"):
                    assert (PROJECT_ROOT / c).is_file(), c


def test_fragments_are_listed_apart_from_complete_configs():
    from sfda.commands.listing import config_fragments, shipped_configs

    frags, full = config_fragments(), shipped_configs()
    assert "office-home/compare/gce" in frags and "digits/compare/ns_ws" in frags
    assert not any("/compare/" in c for c in full) and "office-home/shot/Ar_Cl" in full
