"""Runs without the optional packages (extras): TensorBoard, matplotlib, timm; faiss is covered in
test_neighbors.py. Each is made unimportable for the test (a None entry in sys.modules)."""

import sys

import pytest
import torch

from sfda.cli import main
from sfda.config import load_config
from sfda.engine.runlog import TENSORBOARD_MISSING, RunLog
from sfda.errors import ConfigError
from sfda.models.network import build_model


def test_run_log_without_tensorboard_is_text_only_with_a_one_line_notice(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    run = RunLog(tmp_path / "run", tensorboard=True)
    run.scalars({"acc": 50.0}, step=1)  # no-ops without TensorBoard
    run.histogram("w", torch.rand(5), step=1)
    run.info("epoch 1 done")
    run.close()
    assert run.tb is None and not (tmp_path / "run" / "tb").exists()
    lines = (tmp_path / "run" / "log.txt").read_text().splitlines()  # the run's log: what the console showed
    notices = [ln for ln in lines if "TensorBoard" in ln]
    assert len(notices) == 1 and notices[0].endswith(" " + TENSORBOARD_MISSING)
    assert "pip install tensorboard" in TENSORBOARD_MISSING and "\n" not in TENSORBOARD_MISSING
    assert lines[-1].endswith(" epoch 1 done")


def test_run_log_writes_tensorboard_events_when_installed(tmp_path):
    pytest.importorskip("torch.utils.tensorboard")
    run = RunLog(tmp_path / "run", tensorboard=True)
    run.scalars({"acc": 50.0}, step=1)
    run.close()
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    assert "TensorBoard" not in (tmp_path / "run" / "log.txt").read_text()


def test_sfda_plot_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    torch.save(
        {
            "last": {
                "epoch": 1,
                "indices": torch.arange(4),
                "targets": torch.tensor([0, 1, 0, 1]),
                "scores": torch.rand(4),
                "weights": torch.rand(4),
                "sigma": 0.6,
                "rho": 1.0,
                "m": 4,
            }
        },
        tmp_path / "ns_scores.pt",
    )
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0
    assert "needs matplotlib" in err and "pip install matplotlib" in err and '".[plot]"' in err
    assert not (tmp_path / "plots").exists()


def test_timm_backbone_without_timm_is_one_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    cfg = load_config("imagenet/swin_t.yaml", ["model.pretrained=false"])  # the config loads without timm
    with pytest.raises(ConfigError) as e:
        build_model(cfg)
    msg = str(e.value)
    assert "needs the timm package: pip install timm" in msg and '".[timm]"' in msg and "\n" not in msg


def test_console_log_follows_a_later_stdout_redirect():
    """The console handler is set up once per process; output logged after a caller redirects stdout must
    reach the new stream (pytest's capsys, contextlib.redirect_stdout), not the stream of the first set-up."""
    import contextlib
    import io

    from sfda.engine.runlog import log, setup_console

    first, second = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(first):
        setup_console()
        log.info("one")
    with contextlib.redirect_stdout(second):
        setup_console()  # a second set-up adds no second handler
        log.info("two")
    assert first.getvalue() == "one\n" and second.getvalue() == "two\n"
