"""The shipped benchmark configs (Office-31, VisDA-C, DomainNet-126, CIFAR, CIFAR-LT, ImageNet-1K, visual
emotion): each resolves, names existing lists or a registered dataset format, and builds its model on the CPU;
the published settings; the supervised dataset formats; `sfda table` for single-domain benchmarks."""

import json
from argparse import Namespace
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sfda.config import load_config
from sfda.data.formats import build_format
from sfda.data.lists import read_list
from sfda.engine.runner import source_config
from sfda.errors import ConfigError, DataError
from sfda.models.network import build_model
from sfda.paths import CONFIGS_DIR, resolve_path
from sfda.registry import FORMATS, METHODS
from sfda.results.paper import PAPER
from sfda.results.table import render, select_runs

SFDA = {
    "office31": (["A_D", "A_W", "D_A", "D_W", "W_A", "W_D"], ["amazon", "dslr", "webcam"]),
    "visda-c": (["T_V"], ["train"]),
    "domainnet-126": (["R_C", "R_P", "P_C", "C_S", "S_P", "R_S", "P_R"], ["clipart", "painting", "real", "sketch"]),
}
SUPERVISED = ("cifar", "cifar-lt", "imagenet", "emotion")
CONFIGS = sorted(
    str(p.relative_to(CONFIGS_DIR))
    for b in (*SFDA, *SUPERVISED)
    for p in (CONFIGS_DIR / b).rglob("*.yaml")
    if not p.name.startswith("_")
)
NOT_SHIPPED = {("visda-c", "train")}  # made by the user with `sfda lists make`


@cache
def _labels(list_file: str, k: int):
    return sorted({e.label for e in read_list(list_file, k)})


def test_every_benchmark_has_configs():
    assert (
        len(CONFIGS) == 15 + 24 + 3 + 4 + 18 + 28 + 16 + 16 + 4 + 72 + 28 + 28
    )  # office31, visda-c, domainnet-126: + 4 contrastive; + 28 DIFO, + 28 TPDS (each with and without NS)
    for bench, (tasks, sources) in SFDA.items():
        for t in tasks:
            assert f"{bench}/shot/{t}.yaml" in CONFIGS and f"{bench}/shot_ns/{t}.yaml" in CONFIGS
        for s in sources:
            assert f"{bench}/source/{s}.yaml" in CONFIGS


@pytest.mark.parametrize("name", CONFIGS)
def test_config_resolves_and_names_its_data(name):
    cfg = load_config(name)
    assert cfg.benchmark in PAPER, cfg.benchmark
    if cfg.method.name != "source" or cfg.benchmark in SUPERVISED:  # a table column
        assert cfg.task in PAPER[cfg.benchmark]["tasks"], (cfg.task, cfg.benchmark)
    assert cfg.data.format in FORMATS and cfg.data.num_classes > 0
    assert METHODS.get(cfg.method.name)
    if cfg.data.format == "list":
        lists = resolve_path(cfg.data.lists_dir)
        for d in {cfg.data.source, cfg.data.target} - {""}:
            if (cfg.benchmark, d) in NOT_SHIPPED:
                assert not (lists / f"{d}.txt").exists()
                continue
            assert _labels(str(lists / f"{d}.txt"), cfg.data.num_classes) == list(range(cfg.data.num_classes))
    if cfg.method.name != "source":
        src = source_config(cfg)
        assert src.method.name == "source" and src.data.source == cfg.data.source and src.model == cfg.model
    if cfg.benchmark in SUPERVISED:
        assert cfg.method.name == "source" and cfg.method.select_best is False and cfg.eval.other_domains is False
        assert cfg.model.bottleneck_dim == 0 and cfg.model.classifier == "linear"


def test_every_model_builds_on_cpu():
    """One build per distinct model section (the expensive part); ImageNet weights are not downloaded here."""
    seen = {}
    for name in CONFIGS:
        cfg = load_config(name, ["model.pretrained=false"])
        key = json.dumps(cfg.model.to_dict(), sort_keys=True)
        if key not in seen:
            seen[key] = cfg
    built = set()
    for cfg in seen.values():
        if cfg.model.backbone == "timm":
            try:
                import timm  # noqa: F401
            except ImportError:
                with pytest.raises(ConfigError, match="pip install timm"):
                    build_model(cfg)
                continue
        model = build_model(cfg)
        assert model.netC.fc.out_features == cfg.data.num_classes
        built.add(cfg.model.backbone)
    assert {
        "resnet50",
        "resnet101",
        "resnet18",
        "cifar_alexnet",
        "cifar_vgg19",
        "cifar_resnet110",
        "cifar_resnext29",
        "cifar_resnet32",
        "alexnet",
        "vgg16",
        "densenet121",
        "vit_b_16",
    } <= built


# -- published settings ------------------------------------------------------------------------------------
def test_sfda_settings():
    for bench in SFDA:
        for t in SFDA[bench][0]:
            shot, ns = load_config(f"{bench}/shot/{t}.yaml"), load_config(f"{bench}/shot_ns/{t}.yaml")
            assert shot.label == "SHOT" and ns.label == "SHOT+NS-WS" and shot.task == ns.task == t
            assert (shot.data.source, shot.data.target) == (ns.data.source, ns.data.target)
            assert shot.weighting.name == "none" and shot.method.cls_par == 0.3 and shot.optim.epochs == 15
            w = ns.weighting
            assert (w.name, w.m, w.sigma, w.rho) == ("ns", 4, 0.6, 1.0)
    assert load_config("office31/source/amazon.yaml").optim.epochs == 100
    visda = load_config("visda-c/shot/T_V.yaml")
    assert visda.model.backbone == "resnet101" and visda.optim.lr == 1e-3 and visda.method.pl_warmup_epochs == 1
    assert visda.eval.metric == "mean_class_accuracy"
    src = load_config("visda-c/source/train.yaml")
    assert src.optim.epochs == 10 and src.optim.lr == 1e-3 and src.eval.metric == "mean_class_accuracy"
    dn = {
        (c.data.source, c.data.target)
        for c in (load_config(f"domainnet-126/shot/{t}.yaml") for t in SFDA["domainnet-126"][0])
    }
    assert dn == {
        ("real", "clipart"),
        ("real", "painting"),
        ("painting", "clipart"),
        ("clipart", "sketch"),
        ("sketch", "painting"),
        ("real", "sketch"),
        ("painting", "real"),
    }


def test_supervised_settings():
    for ds, sigma in (("cifar10", 0.7), ("cifar100", 0.8)):
        for arch, epochs, ms in (
            ("alexnet", 164, [81, 122]),
            ("vgg19", 164, [81, 122]),
            ("resnet110", 164, [81, 122]),
            ("resnext29", 300, [150, 225]),
        ):
            base, ns = load_config(f"cifar/{ds}/{arch}.yaml"), load_config(f"cifar/{ds}/{arch}_ns.yaml")
            for c in (base, ns):
                o = c.optim
                assert (o.optimizer, o.lr, o.momentum, c.data.batch_size, o.epochs, o.milestones, o.schedule) == (
                    "sgd",
                    0.1,
                    0.9,
                    128,
                    epochs,
                    ms,
                    "step",
                )
            assert base.weighting.name == "none" and ns.label == base.label + "+NS-WS"
            assert (ns.weighting.m, ns.weighting.sigma, ns.weighting.rho) == (4, sigma, 1.0)
    for ds, m, sigma in (("cifar10", 2, 2.5), ("cifar100", 4, 1.5)):
        for imb in (200, 100, 50, 10):
            c = load_config(f"cifar-lt/{ds}/imb{imb}_ns.yaml")
            assert (
                c.data.params.imbalance == imb and c.data.params.dataset == ds and c.model.backbone == "cifar_resnet32"
            )
            assert (c.optim.epochs, c.optim.milestones, c.optim.step_factors) == (
                240,
                [100, 160, 200],
                [0.1, 0.1, 0.01],
            )
            assert (c.weighting.m, c.weighting.sigma, c.weighting.rho, c.label) == (m, sigma, -1.0, "NS-LF")
            assert load_config(f"cifar-lt/{ds}/imb{imb}.yaml").label == "Baseline"
    r18 = load_config("imagenet/resnet18_ns.yaml")
    assert (r18.optim.epochs, r18.optim.milestones, r18.data.batch_size, r18.weighting.sigma) == (
        90,
        [31, 61],
        256,
        2.0,
    )
    swin = load_config("imagenet/swin_t.yaml")
    assert (
        swin.optim.optimizer,
        swin.optim.weight_decay,
        swin.optim.schedule,
        swin.optim.warmup_epochs,
        swin.data.batch_size,
        swin.optim.lr,
    ) == ("adamw", 0.05, "cosine", 5, 1024, 1e-3)
    for ds, m, sigma in (
        ("twitter1", 2, 2.5),
        ("twitter2", 2, 2.5),
        ("flickr", 4, 2.0),
        ("instagram", 4, 2.0),
        ("fi", 4, 2.5),
        ("emoset", 4, 2.5),
    ):
        c = load_config(f"emotion/{ds}/resnet50_ns.yaml")
        assert (c.weighting.m, c.weighting.sigma, c.weighting.rho) == (m, sigma, -1.0) and c.model.pretrained
        assert (c.optim.epochs, c.optim.lr, c.data.batch_size) == (10, 1e-3, 64)


# -- data for the SFDA benchmarks --------------------------------------------------------------------------
def test_visda_train_list_error_and_data_root_lists(tmp_path, capsys):
    cfg = load_config("visda-c/source/train.yaml", [f"data.root={tmp_path}"])
    with pytest.raises(DataError) as e:
        build_format(cfg).source_split("train")
    msg = str(e.value)
    assert (
        "not shipped" in msg
        and "sfda lists make --root" in msg
        and "--classes-from " in msg
        and "data_lists/visda-c/validation.txt`" in msg
    )
    from sfda.commands.lists import _verify

    assert (
        _verify(Namespace(config=["visda-c/source/train.yaml"], root=str(tmp_path), domains=["train"], deep=False)) == 1
    )
    assert "sfda lists make" in capsys.readouterr().out
    # a list made into <root>/lists (the `sfda lists make` default) is found
    (tmp_path / "train" / "car").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "car" / "a.png")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.txt").write_text("train/car/a.png 3\n")
    ds = build_format(cfg).domain("train", train=False)
    assert len(ds) == 1 and ds.labels.tolist() == [3]


# -- supervised dataset formats ----------------------------------------------------------------------------
def _image_tree(root: Path, split: str, classes, n=2):
    for c in classes:
        (root / split / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(root / split / c / f"{i}.jpg")


def test_emotion_lists_from_the_data_root(tmp_path):
    cfg = load_config("emotion/twitter1/resnet50.yaml", [f"data.root={tmp_path}"])
    with pytest.raises(DataError) as e:
        build_format(cfg).source_split("train")
    assert "has no shipped split" in str(e.value) and f"{tmp_path}/lists/{{train,test}}.txt" in str(e.value)
    _image_tree(tmp_path, "train", ["negative", "positive"], 3)
    _image_tree(tmp_path, "test", ["negative", "positive"], 1)
    from sfda.commands.lists import _make

    _make(Namespace(root=str(tmp_path), domains=["train", "test"], out=None, case_sensitive=False, classes_from=None))
    train, test = build_format(cfg).source_split("train")
    assert (len(train), len(test)) == (6, 2) and test.labels.tolist() == [0, 1]
    assert train[0][0].shape == (3, 224, 224)


def test_imagefolder_format(tmp_path):
    classes = ["n01", "n02", "N03"]
    _image_tree(tmp_path, "train", classes, 2)
    _image_tree(tmp_path, "val", classes, 1)
    cfg = load_config("imagenet/resnet18.yaml", [f"data.root={tmp_path}", "data.num_classes=3"])
    train, val = build_format(cfg).source_split("train")
    assert len(train) == 6 and val.labels.tolist() == [0, 1, 2]  # sorted case-sensitively: N03, n01, n02
    assert val.entries[0].path == "val/N03/0.jpg" and val[0][0].shape == (3, 224, 224)
    with pytest.raises(DataError, match="has 3 class folders but data.num_classes=1000"):
        build_format(load_config("imagenet/resnet18.yaml", [f"data.root={tmp_path}"])).source_split("train")
    with pytest.raises(DataError, match="imagefolder expects .*/train/<class>/<image>"):
        build_format(load_config("imagenet/resnet18.yaml", [f"data.root={tmp_path / 'none'}"])).source_split("train")
    flat = tmp_path / "flat"
    _image_tree(flat, "train", classes, 1)
    (flat / "val").mkdir()
    Image.new("RGB", (8, 8)).save(flat / "val" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(DataError, match="not in class folders"):
        build_format(load_config("imagenet/resnet18.yaml", [f"data.root={flat}", "data.num_classes=3"])).source_split(
            "train"
        )


def test_timm_backbone_needs_timm():
    try:
        import timm  # noqa: F401

        pytest.skip("timm is installed")
    except ImportError:
        pass
    with pytest.raises(ConfigError, match="needs the timm package: pip install timm"):
        build_model(load_config("imagenet/swin_t.yaml"))


def test_densenet_imagenet_keys_are_remapped():
    """torchvision's DenseNet checkpoints use 'norm.1'-style keys and have no BatchNorm counters."""
    import torchvision

    from sfda.models.imagenet import densenet_remap
    from sfda.models.weights import load_into
    from sfda.registry import BACKBONES

    ref = torchvision.models.densenet121(weights=None).state_dict()
    old = {
        k.replace("norm1", "norm.1").replace("conv2", "conv.2"): v
        for k, v in ref.items()
        if not k.endswith("num_batches_tracked")
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    net = BACKBONES.get("densenet121")(pretrained=False)
    load_into(net, densenet_remap(old), "test checkpoint")
    assert torch.equal(
        net.state_dict()["features.denseblock1.denselayer1.norm1.weight"],
        ref["features.denseblock1.denselayer1.norm1.weight"],
    )
    assert net.out_features == 1024


# -- sfda table for single-domain benchmarks --------------------------------------------------------------------
def _run(bench, task, label, seed, score, stage="source"):
    return {
        "benchmark": bench,
        "task": task,
        "label": label,
        "seed": seed,
        "score": score,
        "accuracy": score,
        "stage": stage,
        "metric": "accuracy",
        "finished": True,
    }


def test_table_single_domain_layout_and_stage_selection():
    runs = [_run("cifar", "cifar10", "ResNet-110", s, v) for s, v in ((2024, 93.0), (2025, 93.4))]
    runs += [
        _run("cifar", "cifar100", "ResNet-110+NS-WS", 2024, 72.0),
        _run("office-home", "Art", "Source", 2024, 99.0),
        _run("office-home", "Ar_Cl", "SHOT", 2024, 57.0, "adapt"),
    ]
    chosen = select_runs(runs)
    assert len(chosen) == 4 and not any(r["benchmark"] == "office-home" and r["stage"] == "source" for r in chosen)
    assert select_runs(runs, "source") == [r for r in runs if r["stage"] == "source"]
    text = render(chosen, "cifar")
    lines = text.splitlines()
    assert lines[2] == "| method | CIFAR-10 | CIFAR-100 |"
    assert "| **ResNet-110** (ours) | 93.2 ± 0.3 |  |" in lines
    assert (
        lines[lines.index("| **ResNet-110** (ours) | 93.2 ± 0.3 |  |") + 1]
        == "| ResNet-110 (NS paper, Table II) | 92.8 | 70.3 |"
    )
    assert (
        "| **ResNet-110+NS-WS** (ours) |  | 72.0 |" in lines
        and "| AlexNet (NS paper, Table II) | 77.4 | 43.8 |" in lines
    )
    assert "avg" not in text
    assert "| **SHOT** (ours) | 57.0 | 57.0 (1/12 tasks) |" in render(chosen, "office-home")


# -- run scripts ---------------------------------------------------------------------------------------------------
SCRIPTS = {
    "office31.sh": 12,
    "visda_c.sh": 2,
    "domainnet126.sh": 14,
    "cifar.sh": 16,
    "cifar_lt.sh": 16,
    "imagenet.sh": None,
    "emotion.sh": None,
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_run_scripts_use_shipped_configs(script, tmp_path):
    """Each script, run with a stand-in `sfda` that records its calls: every config exists, the extra
    overrides reach every run, and the table comes last."""
    import subprocess

    log = tmp_path / "calls.txt"
    fake = tmp_path / "fake_sfda"
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    root = Path(__file__).resolve().parent.parent
    env = {"PATH": "/usr/bin:/bin", "SFDA": str(fake), "SEEDS": "7", "OUT": str(tmp_path / "runs")}
    r = subprocess.run(["bash", str(root / "scripts" / script), "device=cpu"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    runs, last = calls[:-1], calls[-1].split()
    if SCRIPTS[script] is not None:
        assert len(runs) == SCRIPTS[script]
    for c in runs:
        words = c.split()
        assert words[:2] == ["run", "-c"] and (root / words[2]).is_file(), c
        assert "seed=7" in words and "device=cpu" in words and f"output_root={tmp_path / 'runs'}" in words
    assert last[:2] == ["table", str(tmp_path / "runs")] and last[3] in PAPER
