import re
import subprocess
import sys

from sfda.cli import main


def test_list_shows_registries_and_configs(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in (
        "backbones",
        "resnet50",
        "methods",
        "shot",
        "losses",
        "label_smoothing",
        "weighters",
        "samplers",
        "configs",
        "office-home/shot",
    ):
        assert word in out


def test_list_shows_each_components_parameters_with_types_and_defaults(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "backbones (" in out and "; parameters in model.params):" in out and "; parameters in data.params):" in out
    lines = out.splitlines()
    lenet = lines.index(next(ln for ln in lines if ln.startswith("  lenet ")))
    assert lines[lenet + 1].strip() == "in_channels: int = 1, hidden: int = 0"
    assert "depth: int = 110, shortcut: A|B = 'A'" in out  # cifar_resnet110's own default depth
    assert "dataset: cifar10|cifar100 = 'cifar10', imbalance: float = 100.0, subset_seed: int = 0," in out
    assert "download: bool = true" in out
    assert "name: str = '', kwargs: mapping = {}" in out  # timm
    assert "cls_par: float = 0.3" in out  # a method's (SHOT's) parameters
    assert all(len(ln) <= 120 for ln in lines if ln.startswith(" " * 25))  # wrapped parameter lines


def test_list_verbose_has_a_line_per_parameter(capsys):
    assert main(["list", "-v"]) == 0
    lines = capsys.readouterr().out.splitlines()
    depth = [ln for ln in lines if re.fullmatch(r"\s+depth\s+int\s+32\s+layers: 6n\+2 .*; in \[8, inf\]", ln)]
    assert depth  # name, type, default, help and range
    assert any(re.fullmatch(r"\s+imbalance\s+float\s+100\.0\s+n_max / n_min.*; in \[1, inf\]", ln) for ln in lines)
    assert any(re.fullmatch(r"\s+shortcut\s+A\|B\s+'A'\s+A: zero-padding.*", ln) for ln in lines)
    assert any(re.fullmatch(r"\s+name\s+str\s+''\s+timm model name \(required\).*", ln) for ln in lines)


def test_user_errors_are_one_line_without_traceback(tmp_path):
    cfg = tmp_path / "x.yaml"
    cfg.write_text("optim: {lrr: 0.1}\n")
    r = subprocess.run([sys.executable, "-m", "sfda", "adapt", "-c", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and "did you mean 'optim.lr'" in r.stderr


def test_stage_mismatch_is_reported(capsys):
    rc = main(["train-source", "-c", "configs/office-home/shot/Ar_Cl.yaml"])
    assert rc == 2
    assert "expected a source-training config" in capsys.readouterr().err


def test_config_command_prints_resolved_config(capsys):
    assert main(["config", "-c", "office-home/shot/Ar_Cl", "optim.lr=0.005", "seed=2021"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.005" in out and "seed: 2021" in out and "target: Clipart" in out


def test_missing_data_root_is_explained(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("SFDA_DATA", raising=False)
    rc = main(
        [
            "train-source",
            "-c",
            "office-home/source/Art",
            f"output_root={tmp_path}",
            "device=cpu",
            "model.pretrained=false",
            "log.tensorboard=false",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "SFDA_DATA" in err


def test_a_config_error_stops_before_torchvision_is_imported(tmp_path):
    """A bad value stops `sfda run` right after `import torch`: the registries and the check import neither
    torchvision (seconds) nor anything that needs it, and no run folder is created."""
    code = (
        "import sys; from sfda.cli import main; "
        f"rc = main(['run', '-c', 'configs/digits/cowa/mnist5k_uci.yaml', 'method.coeff=jmdss', "
        f"'output_root={tmp_path / 'runs'}']); "
        "print('rc', rc, 'torchvision' in sys.modules)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.stdout.split() == ["rc", "2", "False"], p.stdout + p.stderr
    assert "'method.coeff' must be one of jmds, lpg, ppl, none, got 'jmdss'" in p.stderr
    assert not (tmp_path / "runs").exists()
