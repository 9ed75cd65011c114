"""digits-LT (issue 16): the long-tailed MNIST-5k lists, their configs, the run script's grid, one NS-LF epoch on
a generated stand-in of the benchmark, `sfda data digits-lt`, and the Table V layout of `sfda table`."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sfda.cli import main
from sfda.config.loader import load_config
from sfda.data import digits_lt
from sfda.data.cifar import long_tail_indices as cifar_long_tail_indices
from sfda.data.formats import build_format
from sfda.data.lists import Entry, read_list, write_list
from sfda.data.long_tail import long_tail_counts, long_tail_indices
from sfda.engine.runner import run_dir, run_label, run_stage
from sfda.paths import CONFIGS_DIR
from sfda.results.paper import PAPER
from sfda.results.table import render

pytestmark = pytest.mark.usefixtures("one_thread")

SHIPPED = digits_lt.SHIPPED
TRAIN = {k: read_list(SHIPPED / f"train_imb{k}.txt", 10) for k in digits_lt.IMBALANCES}
TEST = read_list(SHIPPED / "test.txt", 10)
ROWS = PAPER["digits-lt"]["order"]
METHODS = sorted(p.name for p in (CONFIGS_DIR / "digits-lt").iterdir() if p.is_dir())


def _counts(entries) -> list:
    c = Counter(e.label for e in entries)
    return [c.get(k, 0) for k in range(10)]


# -- the lists ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "imb,expected",
    [
        (1, [400] * 10),
        (10, [400, 309, 239, 185, 143, 111, 86, 66, 51, 40]),
        (50, [400, 258, 167, 108, 70, 45, 29, 19, 12, 8]),
        (100, [400, 239, 143, 86, 51, 30, 18, 11, 6, 4]),
    ],
)
def test_class_counts_follow_the_exponential_profile(imb, expected):
    assert long_tail_counts(400, 10, imb) == expected
    assert _counts(TRAIN[imb]) == expected
    assert expected[0] / expected[-1] == pytest.approx(imb, rel=0.15)  # n_max / n_min, up to int()


def test_test_split_is_balanced_and_disjoint_from_every_training_set():
    assert _counts(TEST) == [100] * 10
    test = {e.path for e in TEST}
    for imb, entries in TRAIN.items():
        paths = {e.path for e in entries}
        assert len(paths) == len(entries) and not paths & test, imb
    assert {e.path for e in TRAIN[1]} | test == {e.path for e in read_list(digits_lt.SOURCE_LISTS / "mnist5k.txt")}


def test_training_sets_are_nested_and_the_lists_are_reproducible():
    assert (
        {e.path for e in TRAIN[100]}
        < {e.path for e in TRAIN[50]}
        < {e.path for e in TRAIN[10]}
        < {e.path for e in TRAIN[1]}
    )
    made = digits_lt.make_lists(read_list(digits_lt.SOURCE_LISTS / "mnist5k.txt", 10))
    assert {k: [(e.path, e.label) for e in v] for k, v in made.items()} == {
        k: [(e.path, e.label) for e in read_list(SHIPPED / f"{k}.txt")] for k in made
    }
    assert read_list(SHIPPED / "uci.txt") == read_list(digits_lt.SOURCE_LISTS / "uci.txt")


def test_cifar_lt_and_digits_lt_share_one_long_tail_helper():
    assert cifar_long_tail_indices is long_tail_indices
    labels = np.repeat(np.arange(10), 40)
    idx = long_tail_indices(labels, 10, 100.0, seed=0, n_max=30)
    assert np.bincount(labels[idx], minlength=10).tolist() == long_tail_counts(30, 10, 100.0)


def test_every_run_evaluates_on_the_same_test_split_whatever_the_seed_and_factor(tmp_path):
    for method in ("baseline", "ns_lf", "cbs"):
        for imb in digits_lt.IMBALANCES:
            for seed in (2019, 2021):
                cfg = load_config(f"digits-lt/{method}/imb{imb}.yaml", [f"seed={seed}", f"data.root={tmp_path}"])
                fmt = build_format(cfg)
                assert fmt.list_file(fmt.hparams.eval_split).resolve() == (SHIPPED / "test.txt").resolve()
                assert fmt.entries(fmt.hparams.eval_split) == TEST
                assert fmt.entries(cfg.data.source) == TRAIN[imb]


# -- configs and the run script ----------------------------------------------------------------------------------
def test_configs_cover_the_grid_with_the_papers_row_names():
    assert len(METHODS) == len(ROWS) == 21
    labels = {}
    for method in METHODS:
        for imb in digits_lt.IMBALANCES:
            cfg = load_config(f"digits-lt/{method}/imb{imb}.yaml")
            assert cfg.benchmark == "digits-lt" and cfg.task == f"imb{imb}" and cfg.data.source == f"train_imb{imb}"
            assert cfg.method.name == "source" and cfg.method.select_best is False and cfg.eval.other_domains
            assert cfg.optim.epochs == 20 and cfg.model.backbone == "lenet" and cfg.data.domains == ["uci"]
            labels.setdefault(method, set()).add(run_label(cfg))
    assert all(len(v) == 1 for v in labels.values()) and {v.pop() for v in labels.values()} == set(ROWS)
    lf = load_config("digits-lt/ns_lf/imb100.yaml").weighting
    lf4 = load_config("digits-lt/ns_lf_m4/imb100.yaml").weighting
    ws = load_config("digits-lt/ns_ws/imb1.yaml").weighting
    assert (lf.m, lf.sigma, lf.rho, lf4.m, lf4.sigma, lf4.rho, ws.m, ws.sigma, ws.rho) == (
        2,
        2.5,
        -1,
        4,
        1.5,
        -1,
        4,
        0.7,
        1,
    )


# -- one NS-LF epoch on a generated stand-in ----------------------------------------------------------------------
def _digit(rng: np.random.Generator, label: int) -> np.ndarray:
    """28x28 grey image: a bright bar whose position and angle encode the class, plus noise."""
    img = np.zeros((28, 28), np.float32)
    yy, xx = np.mgrid[0:28, 0:28]
    angle = np.pi * label / 10
    d = np.abs((yy - 14) * np.cos(angle) - (xx - 14) * np.sin(angle))
    img += np.exp(-(d**2) / 4.0) * (np.hypot(yy - 14, xx - 14) < 10)
    img += 0.1 * rng.random((28, 28))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def small_digits_lt(tmp_path_factory) -> Path:
    """A stand-in of the benchmark: 60 generated images per class, lists made by digits_lt.make_lists with a
    10-per-class test split and n_max 50, and a 5-per-class 'uci' set."""
    root = tmp_path_factory.mktemp("digits_lt")
    rng = np.random.default_rng(0)
    entries = {"mnist5k": [], "uci": []}
    for domain, per_class in (("mnist5k", 60), ("uci", 5)):
        for k in range(10):
            for i in range(per_class):
                rel = f"{domain}/{k}/{i:03d}.png"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(_digit(rng, k), mode="L").save(root / rel)
                entries[domain].append(Entry(rel, k, len(entries[domain]) + 1))
    for name, lst in digits_lt.make_lists(entries["mnist5k"], test_per_class=10, n_max=50).items():
        write_list(lst, root / "lists" / f"{name}.txt")
    write_list(entries["uci"], root / "lists" / "uci.txt")
    return root


def test_one_epoch_of_the_ns_lf_config_runs_end_to_end_and_tabulates(small_digits_lt, tmp_path):
    cfg = load_config(
        "digits-lt/ns_lf/imb100.yaml",
        [
            f"data.root={small_digits_lt}",
            f"data.lists_dir={small_digits_lt / 'lists'}",
            f"output_root={tmp_path}",
            "device=cpu",
            "optim.epochs=1",
            "log.tensorboard=false",
            "log.progress=none",
            "seed=2019",
        ],
    )
    m = run_stage(cfg)
    assert m["finished"] and m["label"] == "NS-LF" and m["task"] == "imb100" and m["benchmark"] == "digits-lt"
    assert m["weighting"] == "ns" and len(m["per_class_accuracy"]) == 10 and 0 <= m["score"] <= 100
    assert set(m["source_only"]) == {"uci"} and "w_clamped_fraction" in m["history"][1]
    assert (run_dir(cfg) / "ns_scores.pt").is_file()
    text = render([m])
    assert "| method | ×100 |" in text and "| **NS-LF** (ours) |" in text and "UCI digits" in text
    assert "| NS-LF (NS paper, Table V) | 65.9 | 71.2 | 75.3 | 87.3 |" in text


# -- sfda data digits-lt -----------------------------------------------------------------------------------------
def test_data_command_writes_the_shipped_lists_next_to_built_images(tmp_path, capsys):
    out = tmp_path / "digits-offline"
    (out / "lists").mkdir(parents=True)
    for f in ("mnist5k.txt", "uci.txt"):
        shutil.copy(digits_lt.SOURCE_LISTS / f, out / "lists" / f)
    (out / "READY").write_text("sfda digits-offline\n")  # the images themselves are not needed for the lists
    assert main(["data", "digits-lt", "--out", str(out)]) == 0
    assert "identical to the shipped" in capsys.readouterr().out
    for f in digits_lt.LIST_FILES:
        assert (out / "lists" / f).read_text() == (SHIPPED / f).read_text()
    lines = (out / "lists" / "mnist5k.txt").read_text().splitlines()
    (out / "lists" / "mnist5k.txt").write_text("\n".join(lines[::-1]) + "\n")  # another image order
    assert main(["data", "digits-lt", "--out", str(out)]) == 2
    assert "differ from the shipped" in capsys.readouterr().err


# -- the Table V layout --------------------------------------------------------------------------------------------
def _m(task, label, seed, score, uci):
    return {
        "benchmark": "digits-lt",
        "task": task,
        "label": label,
        "seed": seed,
        "score": score,
        "accuracy": score,
        "stage": "source",
        "metric": "accuracy",
        "finished": True,
        "source_only": {"uci": uci},
    }


def test_table_v_layout_rows_in_the_papers_order_uci_beside_and_cifar_lt_10_apart():
    runs = [_m("imb100", "NS-LF", s, v, 50.0) for s, v in ((2019, 70.0), (2020, 72.0))]
    runs += [_m(t, "Baseline", 2019, 60.0, 40.0) for t in ("imb1", "imb100")] + [
        _m("imb100", "Baseline", 2020, 62.0, 42.0)
    ]
    text = render(runs, "digits-lt")
    lines = text.splitlines()
    assert lines[2] == "| method | ×100 | ×1 (balanced) |"
    assert lines[4:6] == [
        "| **Baseline** (ours) | 61.0 ± 1.4 | 60.0 (1 seed) |",
        "| **NS-LF** (ours) | 71.0 ± 1.4 |  |",
    ]
    uci = lines.index("#### digits-lt: UCI digits, the same models (cross-dataset test)")
    assert lines[uci + 4] == "| **Baseline** (ours) | 41.0 ± 1.4 | 40.0 (1 seed) |"
    ref = lines.index("#### NS paper, Table V: CIFAR-LT-10, ResNet-32, 240 epochs (for reference; another dataset)")
    assert (
        lines[ref + 2] == "| method | ×200 | ×100 | ×50 | ×10 |"
        and lines[ref + 4] == "| Baseline (NS paper, Table V) | 64.0 | 69.5 | 72.7 | 86.7 |"
    )
    assert len(lines) - ref - 4 == 17 and "33.6" not in text  # the 17 CIFAR-LT-10 rows, no CIFAR-LT-100 number
    assert "Table V" not in render(runs, "digits-lt", paper=False)


def test_per_seed_table_lists_every_run_in_the_papers_row_order(tmp_path, capsys):
    from sfda.results.per_seed import render_per_seed

    runs = [_m("imb100", "NS-LF", s, v, 50.0) | {"wall_time_s": w} for s, v, w in ((2019, 70.0, 10), (2021, 72.5, 20))]
    runs += [_m("imb1", "Baseline", 2020, 96.0, 58.0), _m("imb100", "Baseline", 2020, 62.0, 42.0)]
    lines = render_per_seed(runs, "digits-lt").splitlines()
    assert lines[2] == "| method | task | seed 2019 | seed 2020 | seed 2021 | mean ± std | uci mean | wall s (mean) |"
    assert lines[4:] == [
        "| Baseline | ×100 |  | 62.00 |  | 62.0 | 42.0 |  |",  # the paper's order: Baseline before NS-LF
        "| NS-LF | ×100 | 70.00 |  | 72.50 | 71.2 ± 1.8 | 50.0 | 15 |",
        "| Baseline | ×1 (balanced) |  | 96.00 |  | 96.0 | 58.0 |  |",
    ]
    for i, m in enumerate(runs):  # the command: after the summary tables
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "metrics.json").write_text(json.dumps(m))
    assert main(["table", str(tmp_path), "--per-seed", "--no-paper"]) == 0
    out = capsys.readouterr().out
    assert out.index("#### digits-lt: UCI digits") < out.index("#### digits-lt: every run (score %, per seed)")


def test_plot_classes_draws_the_rows_mean_per_class_accuracy(tmp_path, capsys):
    import json

    pytest.importorskip("matplotlib")
    from sfda.results.per_class import per_class_means

    runs = []
    for label, seed, acc in (("Baseline", 1, [90.0, 10.0]), ("Baseline", 2, [80.0, 30.0]), ("NS-LF", 1, [85.0, 40.0])):
        m = {**_m("imb100", label, seed, 50.0, 40.0), "per_class_accuracy": acc}
        runs.append(m)
        d = tmp_path / "runs" / label / str(seed)
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(m))
    assert per_class_means(runs, "digits-lt", "imb100", ["Baseline", "NS-LF"]) == {
        "Baseline": [85.0, 20.0],
        "NS-LF": [85.0, 40.0],
    }
    out = tmp_path / "fig.png"
    assert (
        main(
            [
                "plot-classes",
                str(tmp_path / "runs"),
                "--benchmark",
                "digits-lt",
                "--task",
                "imb100",
                "--labels",
                "Baseline",
                "NS-LF",
                "--sizes-from",
                str(SHIPPED / "train_imb100.txt"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.is_file() and out.stat().st_size > 1000
    assert (
        main(
            [
                "plot-classes",
                str(tmp_path / "runs"),
                "--benchmark",
                "digits-lt",
                "--task",
                "imb100",
                "--labels",
                "NS-WS",
            ]
        )
        == 2
    )
    assert "no finished digits-lt run 'NS-WS' on task imb100; found: Baseline, NS-LF" in capsys.readouterr().err


def test_plot_classes_markdown_prints_the_rows_per_class_table_for_the_chosen_seeds(tmp_path, capsys):
    import json

    for label, seed, score, acc in (
        ("Baseline", 1, 50.0, [90.0, 10.0]),
        ("Baseline", 2, 60.0, [80.0, 30.0]),
        ("NS-LF", 1, 62.5, [85.0, 40.0]),
    ):
        d = tmp_path / "runs" / label / str(seed)
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(
            json.dumps({**_m("imb100", label, seed, score, 40.0), "per_class_accuracy": acc})
        )
    args = ["plot-classes", str(tmp_path / "runs"), "--benchmark", "digits-lt", "--task", "imb100", "--markdown"]
    capsys.readouterr()
    assert main(args + ["--labels", "NS-LF", "Baseline"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "| method | seeds | score | 0 | 1 |",
        "|---|---|---|---|---|",
        "| NS-LF | 1 | 62.5 | 85 | 40 |",
        "| Baseline | 2 | 55.0 | 85 | 20 |",  # the mean over seeds 1 and 2
    ]
    assert main(args + ["--labels", "Baseline", "--seeds", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[2] == "| Baseline | 1 | 60.0 | 80 | 30 |"
    assert not list((tmp_path / "runs").glob("*.png"))  # a table, no figure
