"""The run scripts in scripts/: what they run (with SFDA=echo), that every config they name exists, and the
error for a misspelt name."""

import os
import subprocess

import pytest

from sfda.paths import PROJECT_ROOT

# script -> runs per seed with the defaults (timm absent: no Swin-T), table benchmark
SCRIPTS = {
    "office_home.sh": (24, "office-home"),
    "office31.sh": (12, "office31"),
    "visda_c.sh": (2, "visda-c"),
    "domainnet126.sh": (14, "domainnet-126"),
    "digits.sh": (6, "digits"),
    "cifar.sh": (16, "cifar"),
    "cifar_lt.sh": (16, "cifar-lt"),
    "imagenet.sh": (2, "imagenet"),
    "emotion.sh": (60, "emotion"),
    "digits_lt.sh": (84, "digits-lt"),
}


# the scripts' environment knobs: a value set in the caller's environment must not leak into the test
KNOBS = (
    "SEEDS",
    "METHODS",
    "TASKS",
    "DATASETS",
    "ARCHS",
    "IMBALANCES",
    "MODELS",
    "BACKBONES",
    "VARIANTS",
    "OUT",
    "NPROC",
    "TORCHRUN",
)


def run_script(name, *args, **env):
    base = {k: v for k, v in os.environ.items() if k not in KNOBS}
    full = {
        **base,
        "SFDA": "echo",
        "MODELS": "resnet18",
        "BACKBONES": "alexnet vgg16 resnet50 densenet121 vit_b_16",
        **env,
    }
    return subprocess.run(
        ["bash", str(PROJECT_ROOT / "scripts" / name), *args], capture_output=True, text=True, env=full, cwd="/"
    )


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_runs_each_config_for_each_seed_then_the_table(name):
    per_seed, bench = SCRIPTS[name]
    res = run_script(name, "device=cpu", SEEDS="7 8")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    runs = [line.split() for line in lines if line.startswith("run ")]
    assert len(runs) == 2 * per_seed
    assert [r[3] for r in runs] == ["seed=7"] * per_seed + ["seed=8"] * per_seed  # seeds outermost
    assert all(r[1] == "-c" and r[4:] == ["output_root=runs", "device=cpu"] for r in runs)
    assert {r[2] for r in runs[:per_seed]} == {r[2] for r in runs[per_seed:]}
    for r in runs:
        assert (PROJECT_ROOT / r[2]).is_file(), r[2]
    assert lines[-1] == f"table runs --benchmark {bench}"


def test_office_home_script_runs_the_other_methods():
    res = run_script("office_home.sh", SEEDS="1", METHODS="nrc_ns aad cowa_ns", TASKS="Ar_Cl Rw_Pr")
    runs = [line.split()[2] for line in res.stdout.splitlines() if line.startswith("run ")]
    assert runs == [
        "configs/office-home/nrc_ns/Ar_Cl.yaml",
        "configs/office-home/nrc_ns/Rw_Pr.yaml",
        "configs/office-home/aad/Ar_Cl.yaml",
        "configs/office-home/aad/Rw_Pr.yaml",
        "configs/office-home/cowa_ns/Ar_Cl.yaml",
        "configs/office-home/cowa_ns/Rw_Pr.yaml",
    ]


@pytest.mark.parametrize(
    "name,env,bad",
    [
        ("office_home.sh", {"METHODS": "shoot"}, "configs/office-home/shoot/Ar_Cl.yaml"),
        ("cifar.sh", {"ARCHS": "resnet18"}, "configs/cifar/cifar10/resnet18.yaml"),
    ],
)
def test_a_misspelt_name_stops_before_any_run_with_one_line(name, env, bad):
    res = run_script(name, **env)
    assert res.returncode == 2 and "run " not in res.stdout
    assert res.stderr.strip().splitlines() == [
        f"error: {bad} does not exist (check the names in METHODS/TASKS/VARIANTS/...)"
    ]


def test_digits_lt_script_builds_the_data_unless_given_a_root_and_takes_methods_and_tasks():
    res = run_script("digits_lt.sh", SEEDS="1")
    assert res.returncode == 0 and res.stdout.splitlines()[0] == "data digits-lt"
    res = run_script("digits_lt.sh", "data.root=/somewhere", SEEDS="1 2", METHODS="baseline ns_lf", TASKS="imb100")
    lines = res.stdout.splitlines()
    assert res.returncode == 0 and not any(line.startswith("data ") for line in lines)
    assert [line.split()[2:4] for line in lines[:-1]] == [
        [f"configs/digits-lt/{m}/imb100.yaml", f"seed={s}"] for s in (1, 2) for m in ("baseline", "ns_lf")
    ]


def test_unknown_variant_is_named():
    res = run_script("cifar_lt.sh", VARIANTS="lf")
    assert res.returncode == 2 and "unknown variant 'lf'" in res.stderr


@pytest.mark.parametrize("name", sorted(SCRIPTS) + ["office_home_compare.sh", "digits_compare.sh"])
def test_nproc_launches_each_run_with_torchrun(name):
    grid = {"VARIANTS": "gce"} if "compare" in name else {}
    res = run_script(name, "device=cuda", SEEDS="7", NPROC="4", TORCHRUN="echo torchrun --standalone", **grid)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    runs = [line.split() for line in lines if " run " in line and not line.startswith("==")]
    assert runs and all(r[:6] == ["torchrun", "--standalone", "--nproc_per_node", "4", "-m", "sfda"] for r in runs)
    assert all(r[6:8] == ["run", "-c"] and "device=cuda" in r for r in runs)
    assert lines[-1].startswith("table runs --benchmark")  # the table is not a distributed run


def test_multi_node_launcher_and_a_bad_nproc():
    res = run_script(
        "visda_c.sh",
        SEEDS="1",
        NPROC="8",
        TORCHRUN="echo torchrun --nnodes 2 --rdzv-backend c10d --rdzv-endpoint node1:29500",
    )
    first = res.stdout.splitlines()[0].split()
    assert first[:10] == [
        "torchrun",
        "--nnodes",
        "2",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        "node1:29500",
        "--nproc_per_node",
        "8",
        "-m",
    ]
    res = run_script("office_home.sh", NPROC="two")
    assert res.returncode == 2 and "run " not in res.stdout
    assert res.stderr.strip() == "error: NPROC must be a number of processes per node (e.g. NPROC=4), got 'two'"


@pytest.mark.parametrize(
    "name,bench,tasks",
    [
        ("office_home.sh", "office-home", 12),
        ("office31.sh", "office31", 6),
        ("visda_c.sh", "visda-c", 1),
        ("domainnet126.sh", "domainnet-126", 7),
    ],
)
def test_scripts_run_the_contrastive_methods_on_every_task(name, bench, tasks):
    methods = ["adacontrast", "adacontrast_ns", "plue", "plue_ns"]
    res = run_script(name, SEEDS="1", METHODS=" ".join(methods))
    assert res.returncode == 0, res.stderr
    runs = [line.split()[2] for line in res.stdout.splitlines() if line.startswith("run ")]
    assert len(runs) == 4 * tasks and {r.split("/")[2] for r in runs} == set(methods)
    assert all(r.startswith(f"configs/{bench}/") and (PROJECT_ROOT / r).is_file() for r in runs)
