import subprocess
import sys


from sfda.cli import main


def test_list_shows_registries_and_configs(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("backbones", "resnet50", "methods", "shot", "losses", "label_smoothing", "weighters", "samplers",
                 "configs", "office-home/shot"):
        assert word in out


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
    rc = main(["train-source", "-c", "office-home/source/Art", f"output_root={tmp_path}", "device=cpu",
               "model.pretrained=false", "log.tensorboard=false"])
    err = capsys.readouterr().err
    assert rc == 2 and "SFDA_DATA" in err
