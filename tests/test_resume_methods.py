"""Resume for every method: a run stopped after epoch k and resumed ends with exactly the metrics, the history
and the weights of an uninterrupted run (CPU, fixed seed, separate output roots), and nothing a method keeps
between steps is left out of its saved state."""

import pytest
import torch

from sfda.config import config_from_dict
from sfda.datatypes import Inference
from sfda.engine.runner import run_dir, run_stage
from sfda.models.network import build_model
from sfda.registry import METHODS

pytestmark = pytest.mark.usefixtures("one_thread")

SOURCE = {"name": "tiny/source", "method.name": "source"}
ADAPT = {  # a short adaptation per method (2 epochs, stopped after the first)
    "shot": {"method.name": "shot"},
    "shot_ns": {"method.name": "shot", "weighting.name": "ns", "weighting.m": 4, "weighting.sigma": 0.6},
    "nrc": {"method.name": "nrc"},
    "aad": {"method.name": "aad"},
    "cowa": {"method.name": "cowa"},
    "tpds": {"method.name": "tpds"},
}


@pytest.fixture(scope="module")
def make_config(tiny_config):
    """``make_config(root, out, **{"dotted.key": value})`` -> the tiny config, loaded."""

    def make(root, out, **kw):
        return config_from_dict(tiny_config(root, out, **kw))

    return make


@pytest.fixture(scope="module")
def adapt_config(make_config):
    """``adapt_config(root, out, source_dir, case)`` -> the short adaptation ``ADAPT[case]`` of ``source_dir``."""

    def make(root, out, source_dir, case):
        return make_config(
            root,
            out,
            **{
                "name": f"tiny/{case}",
                "source.checkpoint": str(source_dir),
                "optim.epochs": 2,
                "optim.lr": 0.01,
                "optim.classifier_lr_mult": 0.1,
                **ADAPT[case],
            },
        )

    return make


@pytest.fixture(scope="module")
def source(two_domains, tmp_path_factory, make_config):
    """An uninterrupted source run: the reference of the source resume test and the adaptations' source model."""
    cfg = make_config(two_domains, tmp_path_factory.mktemp("resume_source"), **SOURCE)
    metrics = run_stage(cfg)
    assert metrics["val_accuracy"] > 90
    return cfg, metrics


def test_source_training_resumes_exactly(two_domains, source, tmp_path, make_config, same_run):
    full_cfg, full = source
    cfg = make_config(two_domains, tmp_path, **SOURCE)
    assert run_stage(cfg, stop_after_epoch=2) is None
    state = torch.load(run_dir(cfg) / "state.pt", weights_only=False)
    assert state["epoch_done"] == 2 and state["best"]["epoch"] in (1, 2)  # the best weights so far travel along
    resumed = run_stage(cfg)
    assert resumed["best_epoch"] == full["best_epoch"]
    same_run(full_cfg, cfg, full, resumed, "source")


@pytest.mark.parametrize("case", list(ADAPT))
def test_adaptation_resumes_exactly(two_domains, source, tmp_path, case, adapt_config, same_run):
    source_dir = run_dir(source[0])
    full_cfg = adapt_config(two_domains, tmp_path / "full", source_dir, case)
    full = run_stage(full_cfg)
    assert [h["epoch"] for h in full["history"]] == [0, 1, 2] and full["history"][-1]["accuracy"] == full["accuracy"]
    if case in ("nrc", "aad", "cowa", "tpds"):
        assert full["accuracy"] > full["source_only_accuracy"] + 10, (full["source_only_accuracy"], full["accuracy"])
    cfg = adapt_config(two_domains, tmp_path / "resumed", source_dir, case)
    assert run_stage(cfg, stop_after_epoch=1) is None
    state = torch.load(run_dir(cfg) / "state.pt", weights_only=False)["method"]
    if case in ("nrc", "aad"):  # the memory banks travel with the resume state
        assert state["bank"]["features"].shape[0] == 160 and state["bank"]["scores"].shape == (160, 4)
    if case.startswith("shot") or case == "cowa":
        assert state["pseudo"].shape == (160,)
    if case == "cowa":
        assert state["confidence"].shape == (160,)
    if case == "tpds":  # its bank and flags are rebuilt by the resumed run's epoch-start pass
        assert state == {}
    resumed = run_stage(cfg)
    same_run(full_cfg, cfg, full, resumed, "target")


@pytest.mark.parametrize("name", ["source", "shot", "nrc", "aad", "cowa", "tpds"])
def test_everything_a_method_keeps_is_in_its_state(two_domains, tmp_path, name, make_config):
    """Attributes set by setup() and the hooks are either saved state or rebuilt by setup() from the config."""
    cfg = make_config(two_domains, tmp_path, **{"method.name": name})
    model = build_model(cfg)
    method = METHODS.get(name)(model, 4, dict(cfg.method), cfg)

    class TrainSet(list):
        labels = torch.arange(16) % 4

    method.setup(TrainSet(range(16)), "cpu")
    if name != "source":
        model.eval()
        with torch.no_grad():
            images = torch.randn(16, 3, 16, 16)
            features, logits = model(images, return_features=True)
        method.on_epoch_start(0, Inference(features, logits, torch.arange(16) % 4, model.netF(images)))
    saved = set(method.state_dict())
    rebuilt_by_setup = {"train_size"}  # plain numbers derived from the data set
    assert set(vars(method)) - saved - set(method.NOT_STATE) <= rebuilt_by_setup
    expected = {
        "source": {"criterion"},
        "shot": {"criterion", "pseudo"},
        "nrc": {"bank"},
        "aad": {"bank"},
        "cowa": {"pseudo", "confidence"},
        "tpds": set(),  # bank and flags: rebuilt from every epoch-start pass (TPDS.NOT_STATE)
    }[name]
    assert saved == expected
