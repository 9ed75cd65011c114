"""CIFAR models, the CIFAR / CIFAR-LT dataset formats on small generated CIFAR files, and a one-epoch CIFAR-LT run."""

import pickle
import urllib.error

import numpy as np
import pytest
import torch

from sfda.config import load_config
from sfda.data.cifar import long_tail_counts, long_tail_indices
from sfda.data.formats import build_format
from sfda.engine.runner import run_stage
from sfda.errors import ConfigError, DataError
from sfda.models.network import build_model
from sfda.registry import BACKBONES
from sfda.results.table import render

PER_CLASS_TRAIN, PER_CLASS_TEST = 30, 4


def write_fake_cifar(root, name="cifar10", per_class_train=PER_CLASS_TRAIN, per_class_test=PER_CLASS_TEST, seed=0):
    """CIFAR python pickles in torchvision's layout (class k images are noisy with mean brightness by k)."""
    rng = np.random.default_rng(seed)
    k = 10 if name == "cifar10" else 100

    def batch(n_per_class, key):
        labels = np.repeat(np.arange(k), n_per_class)
        rng.shuffle(labels)
        base = (labels[:, None] * (200 // k) + 20).astype(np.int64)
        data = np.clip(base + rng.integers(-10, 10, size=(len(labels), 3072)), 0, 255).astype(np.uint8)
        return {b"data": data, key: labels.tolist()}

    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        train = batch(per_class_train, b"labels")
        for i in range(5):  # split the training set over the five batch files
            part = {b"data": train[b"data"][i::5], b"labels": train[b"labels"][i::5]}
            (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(part))
        (folder / "test_batch").write_bytes(pickle.dumps(batch(per_class_test, b"labels")))
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        (folder / "train").write_bytes(pickle.dumps(batch(per_class_train, b"fine_labels")))
        (folder / "test").write_bytes(pickle.dumps(batch(per_class_test, b"fine_labels")))
    return root


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_fake_cifar(root, "cifar10")
    write_fake_cifar(root, "cifar100", per_class_train=6, per_class_test=2)
    return root


# -- models -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,params_m,dim",
    [
        ("cifar_alexnet", 2.47, 256),
        ("cifar_vgg19", 20.04, 512),
        ("cifar_resnet32", 0.46, 64),
        ("cifar_resnet110", 1.73, 64),
        ("cifar_resnext29", 34.43, 1024),
    ],
)
def test_cifar_models_shapes_and_sizes(name, params_m, dim):
    cfg = load_config("cifar/cifar10/resnet110.yaml", [f"model.backbone={name}"])
    model = build_model(cfg).eval()
    assert model.netF.out_features == dim and isinstance(model.netB, torch.nn.Identity)
    assert isinstance(model.netC.fc, torch.nn.Linear) and model.netC.fc.out_features == 10
    n = sum(p.numel() for p in model.parameters()) / 1e6
    assert n == pytest.approx(params_m, rel=0.01), n
    with torch.no_grad():
        f, z = model(torch.randn(2, 3, 32, 32), return_features=True)
    assert f.shape == (2, dim) and z.shape == (2, 10)


def test_cifar_resnet_depth_is_checked():
    with pytest.raises(ConfigError, match="'model.params.depth' must be 6n\\+2"):
        BACKBONES.get("cifar_resnet")(depth=33)
    # in a config: stopped when it loads, naming the key, the value and the backbone
    with pytest.raises(
        ConfigError, match=r"^command line: 'model.params.depth' must be 6n\+2 .*got 33 \(backbone 'cifar_resnet110'\)$"
    ):
        load_config("cifar/cifar10/resnet110.yaml", ["model.params.depth=33"])
    with pytest.raises(ConfigError, match=r"'model.params.shortcut' must be one of A, B, got 'C'"):
        load_config("cifar/cifar10/resnet110.yaml", ["model.params.shortcut=C"])
    with pytest.raises(ConfigError, match=r"'model.params.depth' must be 9n\+2 .*got 30"):
        load_config("cifar/cifar10/resnext29.yaml", ["model.params.depth=30"])
    assert load_config("cifar/cifar10/resnet110.yaml").model.params == {"depth": 110, "shortcut": "A"}


def test_cifar_backbones_build_from_their_typed_params():
    net = BACKBONES.get("cifar_resnet")(depth=20, shortcut="b")  # Literal values match case-insensitively
    assert len(net.layer1) == 3 and isinstance(net.layer2[0].shortcut, torch.nn.Sequential)
    assert len(BACKBONES.get("cifar_resnet110")().layer1) == 18 and len(BACKBONES.get("cifar_resnet32")().layer1) == 5
    vgg = build_model(load_config("cifar/cifar10/vgg19.yaml", ["model.params.batch_norm=false"])).netF
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in vgg.modules())


# -- long-tail builder ------------------------------------------------------------------------------------
# training-set sizes of CIFAR-10-LT / CIFAR-100-LT as reported in the long-tail literature (e.g. 12,406 and
# 10,847 at imbalance 100)
LT_TOTALS = {
    (10, 200): 11203,
    (10, 100): 12406,
    (10, 50): 13996,
    (10, 10): 20431,
    (100, 200): 9502,
    (100, 100): 10847,
    (100, 50): 12608,
    (100, 10): 19573,
}


@pytest.mark.parametrize("k,imb", sorted(LT_TOTALS))
def test_long_tail_counts(k, imb):
    n_max = 50000 // k
    c = long_tail_counts(n_max, k, imb)
    assert len(c) == k and c[0] == n_max and c[-1] == int(n_max / imb)
    assert all(a >= b for a, b in zip(c, c[1:]))
    assert c == [int(n_max * imb ** (-i / (k - 1))) for i in range(k)]
    assert sum(c) == LT_TOTALS[(k, imb)]


def test_long_tail_indices_are_seeded_per_class_subsets():
    labels = np.repeat(np.arange(10), 50)
    np.random.default_rng(1).shuffle(labels)
    a = long_tail_indices(labels, 10, 10.0, seed=0)
    assert np.bincount(labels[a], minlength=10).tolist() == long_tail_counts(50, 10, 10.0)
    assert np.array_equal(a, long_tail_indices(labels, 10, 10.0, seed=0))
    assert not np.array_equal(a, long_tail_indices(labels, 10, 10.0, seed=1))
    with pytest.raises(ValueError, match="imbalance factor must be >= 1"):
        long_tail_counts(50, 10, 0.5)


# -- dataset formats --------------------------------------------------------------------------------------
def test_cifar_format_reads_torchvision_layout(cifar_root):
    cfg = load_config("cifar/cifar10/alexnet.yaml", [f"data.root={cifar_root}", "data.params.download=false"])
    train, test = build_format(cfg).source_split("train")
    assert len(train) == 10 * PER_CLASS_TRAIN and len(test) == 10 * PER_CLASS_TEST
    assert train.labels.dtype == torch.long and torch.bincount(train.labels).tolist() == [PER_CLASS_TRAIN] * 10
    x, y, i = test[3]
    assert x.shape == (3, 32, 32) and y == int(test.labels[3]) and i == 3
    cfg = load_config("cifar/cifar100/vgg19.yaml", [f"data.root={cifar_root}"])
    assert len(build_format(cfg).domain("test", False)) == 200


def test_cifar_lt_format_imbalances_only_the_training_set(cifar_root):
    cfg = load_config("cifar-lt/cifar10/imb10.yaml", [f"data.root={cifar_root}"])
    train, test = build_format(cfg).source_split("train")
    assert torch.bincount(train.labels, minlength=10).tolist() == long_tail_counts(PER_CLASS_TRAIN, 10, 10)
    assert torch.bincount(test.labels).tolist() == [PER_CLASS_TEST] * 10


def test_missing_cifar_offline_names_the_archive(tmp_path):
    cfg = load_config("cifar-lt/cifar100/imb100.yaml", [f"data.root={tmp_path}", "data.params.download=false"])
    with pytest.raises(DataError, match=r"cifar-100-python.tar.gz and extract it into"):
        build_format(cfg).source_split("train")


def test_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets as D

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(D, "CIFAR10", offline)
    cfg = load_config("cifar/cifar10/resnet110.yaml", [f"data.root={tmp_path}"])
    with pytest.raises(DataError) as e:
        build_format(cfg).source_split("train")
    msg = str(e.value)
    assert "could not download cifar10 (URLError" in msg and "cifar-10-python.tar.gz" in msg and "\n" not in msg


def test_format_params_and_class_count_are_checked(cifar_root):
    with pytest.raises(ConfigError, match="unknown key 'data.params.imbalanse'.*did you mean 'data.params.imbalance'"):
        build_format(load_config("cifar-lt/cifar10/imb10.yaml", ["data.params.imbalanse=5"]))
    with pytest.raises(ConfigError, match="'data.params.imbalance' must be"):
        build_format(load_config("cifar-lt/cifar10/imb10.yaml", ["data.params.imbalance=high"]))
    with pytest.raises(
        ConfigError, match=r"'data.params.imbalance' must be in \[1, inf\], got 0.5 \(dataset format 'cifar_lt'\)"
    ):
        load_config("cifar-lt/cifar10/imb10.yaml", ["data.params.imbalance=0.5"])
    with pytest.raises(ConfigError, match=r"'data.params.dataset' must be one of cifar10, cifar100, got 'cifar20'"):
        load_config("cifar-lt/cifar10/imb10.yaml", ["data.params.dataset=cifar20"])
    with pytest.raises(ConfigError, match=r"unknown key 'data.params.imbalance'"):
        load_config("cifar/cifar10/alexnet.yaml", ["data.params.imbalance=10"])
    lt = load_config("cifar-lt/cifar100/imb50.yaml").data.params
    assert lt == {"dataset": "cifar100", "imbalance": 50.0, "subset_seed": 0, "download": True}
    with pytest.raises(ConfigError, match="set data.num_classes=100"):
        build_format(load_config("cifar/cifar100/alexnet.yaml", ["data.num_classes=10"]))
    with pytest.raises(DataError, match="splits 'train' and 'test'"):
        build_format(load_config("cifar/cifar10/alexnet.yaml", [f"data.root={cifar_root}"])).domain("val", False)


# -- one epoch of a shipped CIFAR-LT config -----------------------------------------------------------------
def test_cifar_lt_ns_config_trains_one_epoch_and_tabulates(cifar_root, tmp_path):
    cfg = load_config(
        "cifar-lt/cifar10/imb10_ns.yaml",
        [
            f"data.root={cifar_root}",
            "data.params.download=false",
            f"output_root={tmp_path}",
            "device=cpu",
            "optim.epochs=1",
            "data.batch_size=32",
            "data.test_batch_size=64",
            "data.num_workers=0",
            "log.tensorboard=false",
            "log.progress=none",
            "seed=2024",
        ],
    )
    m = run_stage(cfg)
    assert m["finished"] and m["stage"] == "source" and m["label"] == "NS-LF" and m["task"] == "cifar10-lt-10"
    assert m["benchmark"] == "cifar-lt" and m["weighting"] == "ns"
    assert 0.0 <= m["score"] <= 100.0 and m["score"] == m["accuracy"]
    assert len(m["per_class_accuracy"]) == 10
    assert [h["epoch"] for h in m["history"]] == [0, 1] and "w_clamped_fraction" in m["history"][1]
    text = render([m])
    assert "### cifar-lt" in text and "LT-10 ×10" in text
    assert "| **NS-LF** (ours) |" in text and "| NS-LF (NS paper, Table V) | 87.3 |" in text
    assert "avg" not in text
