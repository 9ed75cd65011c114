import textwrap

import pytest

from sfda.config import config_from_dict, load_config, parse_overrides
from sfda.data.formats import build_format
from sfda.errors import ConfigError
from sfda.models.network import build_model


def write(p, text):
    p.write_text(textwrap.dedent(text))
    return p


def test_inheritance_chain_and_overrides(tmp_path):
    write(
        tmp_path / "base.yaml",
        """
        data: {num_classes: 65, batch_size: 32}
        optim: {lr: 0.01, epochs: 50}
        method: {name: shot, cls_par: 0.3}
    """,
    )
    write(
        tmp_path / "mid.yaml",
        """
        _base_: base.yaml
        optim: {epochs: 15}
    """,
    )
    write(
        tmp_path / "task.yaml",
        """
        _base_: mid.yaml
        data: {source: Art, target: Clipart}
        method: {ent_par: 0.5}
    """,
    )
    cfg = load_config(tmp_path / "task.yaml", ["optim.lr=1e-3", "seed=2021", "method.gent=false"])
    assert cfg.data.num_classes == 65 and cfg.data.batch_size == 32  # from base
    assert cfg.optim.epochs == 15  # mid overrides base
    assert cfg.optim.lr == pytest.approx(1e-3) and isinstance(cfg.optim.lr, float)  # 1e-3 is a float
    assert cfg.seed == 2021
    assert cfg.method.cls_par == 0.3 and cfg.method.ent_par == 0.5 and cfg.method.gent is False
    assert cfg.method.pl_loss.name == "ce"  # component defaults filled in
    assert cfg.task == "Art_Clipart"  # derived
    assert cfg.optim.momentum == 0.9  # schema default


def test_list_of_bases_later_wins(tmp_path):
    write(tmp_path / "a.yaml", "optim: {lr: 0.1, epochs: 3}\n")
    write(tmp_path / "b.yaml", "optim: {lr: 0.2}\n")
    write(tmp_path / "c.yaml", "_base_: [a.yaml, b.yaml]\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.optim.lr == 0.2 and cfg.optim.epochs == 3


def test_unknown_key_names_file_line_and_closest(tmp_path):
    write(
        tmp_path / "x.yaml",
        """
        optim:
          lr: 0.01
          lrr: 0.02
    """,
    )
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "x.yaml")
    msg = str(e.value)
    assert "x.yaml:4" in msg and "'optim.lrr'" in msg and "did you mean 'optim.lr'" in msg
    assert "\n" not in msg


def test_unknown_override_key_and_wrong_type():
    with pytest.raises(
        ConfigError, match=r"command line: unknown key 'optim\.momentm' \(did you mean 'optim\.momentum'\?\)"
    ):
        config_from_dict({}, ["optim.momentm=0.5"])
    with pytest.raises(ConfigError, match=r"'optim\.epochs' must be an integer, got 'ten'"):
        config_from_dict({}, ["optim.epochs=ten"])
    with pytest.raises(ConfigError, match=r"'deterministic' must be true/false"):
        config_from_dict({}, ["deterministic=1"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["optim.lr"])


def test_component_keys_checked_against_the_registered_class():
    cfg = config_from_dict({"method": {"name": "shot", "cls_par": 0.1}})
    assert cfg.method.cls_par == 0.1
    with pytest.raises(ConfigError, match=r"unknown key 'method\.cls_parr' \(did you mean 'method\.cls_par'\?\)"):
        config_from_dict({"method": {"name": "shot", "cls_parr": 0.1}})
    with pytest.raises(ConfigError, match=r"unknown method 'shott' \(did you mean 'shot'\?\)"):
        config_from_dict({}, ["method.name=shott"])
    with pytest.raises(ConfigError, match=r"unknown loss 'cee'"):
        config_from_dict({}, ["method.pl_loss.name=cee"])
    # a nested component: the loss's own parameters
    cfg = config_from_dict({"method": {"name": "source", "loss": {"name": "label_smoothing", "eps": 0.2}}})
    assert cfg.method.loss.eps == 0.2


def test_invalid_yaml_names_file_and_line(tmp_path):
    write(tmp_path / "bad.yaml", "optim:\n  lr: [0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_missing_base_and_missing_config(tmp_path):
    write(tmp_path / "x.yaml", "_base_: nope.yaml\n")
    with pytest.raises(ConfigError, match="base config 'nope.yaml' not found"):
        load_config(tmp_path / "x.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")


def test_source_config_path_is_relative_to_the_declaring_file(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "src.yaml", "method: {name: source}\n")
    write(tmp_path / "sub" / "base.yaml", "source: {config: ../src.yaml}\n")
    write(tmp_path / "task.yaml", "_base_: sub/base.yaml\n")
    cfg = load_config(tmp_path / "task.yaml")
    assert cfg.source.config == str((tmp_path / "src.yaml").resolve())


def test_every_shipped_config_resolves():
    from sfda.commands.listing import shipped_configs

    names = shipped_configs()
    assert names, "no shipped configs found"
    for n in names:
        cfg = load_config(n)
        assert cfg.data.num_classes > 0, n


def test_backbone_params_are_typed_checked_at_load_and_reach_the_factory(tmp_path):
    cfg = config_from_dict(
        {"data": {"num_classes": 3}, "model": {"backbone": "lenet", "pretrained": False, "params": {"hidden": 500}}}
    )
    assert cfg.model.params == {"in_channels": 1, "hidden": 500}  # defaults filled in
    net = build_model(cfg).netF
    assert net.out_features == 500 and net.conv_params[0].in_channels == 1
    write(
        tmp_path / "m.yaml",
        """
        model:
          backbone: lenet
          params:
            hidden: -5
    """,
    )
    with pytest.raises(
        ConfigError, match=r"^.*m\.yaml:5: 'model\.params\.hidden' must be in \[0, inf\], got -5 \(backbone 'lenet'\)$"
    ):
        load_config(tmp_path / "m.yaml")
    with pytest.raises(ConfigError, match=r"'model\.params\.in_channels' must be an integer, got 'rgb'"):
        config_from_dict({"model": {"backbone": "small_cnn"}}, ["model.params.in_channels=rgb"])
    with pytest.raises(
        ConfigError, match=r"unknown key 'model\.params\.hiden' \(did you mean 'model\.params\.hidden'\?\)"
    ):
        config_from_dict({"model": {"backbone": "lenet"}}, ["model.params.hiden=5"])
    with pytest.raises(
        ConfigError, match=r"command line: unknown key 'model\.params\.hidden': backbone 'resnet50' takes no parameters"
    ):
        config_from_dict({}, ["model.params.hidden=5"])
    # timm: the model name is required; checked when the config loads, with or without timm installed
    with pytest.raises(ConfigError, match=r"'model\.params\.name' must name a timm model.*\(backbone 'timm'\)"):
        config_from_dict({"model": {"backbone": "timm"}})
    swin = load_config("imagenet/swin_t.yaml", ["model.params.kwargs={drop_path_rate: 0.1}"]).model.params
    assert swin == {"name": "swin_tiny_patch4_window7_224", "kwargs": {"drop_path_rate": 0.1}}


def test_dataset_format_params_are_typed_checked_at_load_and_reach_the_format(tmp_path):
    cfg = load_config("emotion/twitter1/resnet50.yaml", [f"data.root={tmp_path}"])
    assert cfg.data.format == "holdout_lists" and cfg.data.params == {"eval_split": "test"}
    assert build_format(cfg).hparams.eval_split == "test"
    cfg = load_config("imagenet/resnet18.yaml", ["data.params.eval_split=val2"])
    assert build_format(cfg).hparams.eval_split == "val2" and cfg.data.params.train_split == "train"
    with pytest.raises(
        ConfigError, match=r"'data\.params\.download' must be true or false, got 'yes'.*\(dataset format 'cifar10'\)"
    ):
        load_config("cifar/cifar10/alexnet.yaml", ["data.params.download='yes'"])
    with pytest.raises(
        ConfigError, match=r"unknown key 'data\.params\.imbalance': dataset format 'list' takes no parameters"
    ):
        config_from_dict({}, ["data.params.imbalance=3"])
