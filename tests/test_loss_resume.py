"""Losses with state between calls (truncated GCE's mask, NLNL's history and class weights, OGC's queue and
threshold) keep all of it in module buffers: ``state_dict`` restores it exactly into a fresh loss, and a run
killed after an epoch and resumed ends exactly as an uninterrupted one (SHOT's pseudo-label loss and the
supervised source loss)."""

import copy

import pytest
import torch

from sfda.config import config_from_dict
from sfda.engine.runner import run_dir, run_stage
from sfda.losses import Loss, build_loss
from sfda.registry import LOSSES

pytestmark = pytest.mark.usefixtures("one_thread")

# each stateful loss with settings under which its state changes the result within a few tiny epochs
STATEFUL = {
    "truncated_gce": {"name": "truncated_gce"},
    "nlnl": {"name": "nlnl", "selnl_after": 1, "selpl_after": 2, "num_hist": 3},
    "ce_ogc": {"name": "ce_ogc", "queue_size": 16, "interval": 2},
}
STATE_KEYS = {
    "truncated_gce": {"samples.mask", "samples.record", "samples.visits", "samples.due"},
    "nlnl": {"weights", "samples.history", "samples.visits"},
    "ce_ogc": {"queue", "scalars.p_star", "scalars.calls", "scalars.updates", "scalars.filled", "scalars.position"},
}


def _batches(n_steps, num=40, batch=16, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (num,), generator=g)
    out = []
    for _ in range(n_steps):
        idx = torch.randperm(num, generator=g)[:batch]
        out.append((torch.randn(batch, classes, generator=g) * 3, labels[idx], idx))
    return labels, out


def _step(loss, batch, seed):
    torch.manual_seed(seed)  # NLNL draws its complementary labels from the global generator
    z, y, idx = batch
    return loss(z, y, idx)


def _assert_same_state(a: Loss, b: Loss):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_state_dict_restores_a_stateful_loss_exactly_into_a_fresh_one(name):
    spec = STATEFUL[name]
    labels, batches = _batches(8)
    original = build_loss(spec, 4)
    original.update_labels(labels)
    for i, b in enumerate(batches[:5]):
        _step(original, b, i)
    saved = copy.deepcopy(original.state_dict())
    assert set(saved) == STATE_KEYS[name]
    restored = build_loss(spec, 4)  # fresh: per-sample buffers still empty
    restored.load_state_dict(saved)
    _assert_same_state(original, restored)
    for i, b in enumerate(batches[5:], start=5):  # the next outputs and states are equal, bit for bit
        assert torch.equal(_step(original, b, i), _step(restored, b, i))
        _assert_same_state(original, restored)
    # and the state matters: a fresh loss given the same labels computes something else
    fresh = build_loss(spec, 4)
    fresh.update_labels(labels)
    assert not all(torch.equal(_step(original, b, i), _step(fresh, b, i)) for i, b in enumerate(batches[5:], 5))


def test_ogc_scalars_are_buffers_that_stay_on_the_host():
    loss = build_loss(STATEFUL["ce_ogc"], 4)
    labels, batches = _batches(6)
    for i, b in enumerate(batches):
        _step(loss, b, i)
    assert loss.updates == 3 and loss.scalars["calls"] == 6 and loss.scalars["filled"] == 16
    p_star = loss.p_star
    loss.half()  # a dtype (or device) move leaves the scalars as they are
    assert loss.scalars.p_star.dtype == torch.float64 and loss.scalars.calls.dtype == torch.long
    assert loss.p_star == p_star and loss.queue.dtype == torch.float16


def test_the_focal_class_weights_move_with_the_loss_but_are_no_state():
    loss = build_loss({"name": "focal", "alpha": [1.0, 2.0, 3.0]}, 3)
    assert loss.state_dict() == {} and torch.equal(loss.class_alpha, torch.tensor([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("name", sorted(LOSSES.canonical()))
def test_no_loss_keeps_state_outside_its_buffers(name):
    """Every attribute that is not a buffer (hyperparameters, flags) is the same before and after training
    calls and a label refresh: whatever changes is in ``state_dict``."""
    loss = build_loss({"name": name}, 4)

    def plain_attributes():
        return {
            (prefix, k): copy.deepcopy(v)
            for prefix, m in loss.named_modules()
            for k, v in vars(m).items()
            if not k.startswith("_") and k != "training"
        }

    before = plain_attributes()
    labels, batches = _batches(4)
    loss.update_labels(labels)
    for i, b in enumerate(batches):
        _step(loss, b, i)
    loss.update_labels(labels.flip(0))
    assert plain_attributes() == before


# ---- end to end: killed after an epoch and resumed == uninterrupted ---------------------------------------


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory, tiny_config, make_two_domain_set):
    root = make_two_domain_set(tmp_path_factory.mktemp("resume_set"), per_class=6, seed=5)
    out = tmp_path_factory.mktemp("resume_runs")
    src = config_from_dict(
        tiny_config(root, out, **{"name": "src", "method.name": "source", "optim.epochs": 2, "data.batch_size": 8})
    )
    run_stage(src)
    return root, run_dir(src)


def _without_time(history):
    return [{k: v for k, v in rec.items() if k != "time_s"} for rec in history]


def _interrupted_equals_uninterrupted(make_cfg, tmp_path, monkeypatch, loss_cls):
    full = run_stage(make_cfg(tmp_path / "full"))
    cfg = make_cfg(tmp_path / "resumed")
    assert run_stage(cfg, stop_after_epoch=1) is None and (run_dir(cfg) / "state.pt").exists()
    resumed = run_stage(cfg)
    assert resumed["accuracy"] == full["accuracy"]
    assert _without_time(resumed["history"]) == _without_time(full["history"])
    # the check has teeth: resuming without the loss's saved state ends differently
    cfg = make_cfg(tmp_path / "without_loss_state")
    run_stage(cfg, stop_after_epoch=1)
    monkeypatch.setattr(loss_cls, "load_state_dict", lambda self, state, strict=True: None)
    forgetful = run_stage(cfg)
    assert _without_time(forgetful["history"]) != _without_time(full["history"])


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_shot_with_a_stateful_pseudo_label_loss_resumes_exactly(tiny_source, tmp_path, monkeypatch, name, tiny_config):
    root, src = tiny_source

    def make_cfg(out):
        return config_from_dict(
            tiny_config(
                root,
                out,
                **{
                    "name": f"shot_{name}",
                    "method.name": "shot",
                    "source.checkpoint": str(src),
                    "optim.epochs": 3,
                    "data.batch_size": 8,
                    "method.pl_loss": dict(STATEFUL[name]),
                },
            )
        )

    _interrupted_equals_uninterrupted(make_cfg, tmp_path, monkeypatch, LOSSES.get(name))


def test_source_training_with_a_stateful_loss_resumes_exactly(tiny_source, tmp_path, monkeypatch, tiny_config):
    root, _ = tiny_source

    def make_cfg(out):
        return config_from_dict(
            tiny_config(
                root,
                out,
                **{
                    "name": "src_nlnl",
                    "method.name": "source",
                    "optim.epochs": 3,
                    "data.batch_size": 8,
                    "method.loss": dict(STATEFUL["nlnl"]),
                },
            )
        )

    _interrupted_equals_uninterrupted(make_cfg, tmp_path, monkeypatch, LOSSES.get("nlnl"))
