"""End-to-end behaviour of the two stages on a tiny generated two-domain image set (CPU, seconds)."""

import json
import time

import pytest
import torch

from sfda.config import config_from_dict
from sfda.engine.runner import run_dir, run_stage
from sfda.models.checkpoint import load_fbc
from sfda.models.network import build_model


@pytest.fixture(scope="module")
def adapt_cfg(tiny_config):
    """``adapt_cfg(root, out, src_dir, **{"dotted.key": value})`` -> a SHOT config adapting ``src_dir``."""

    def make(root, out, src_dir, **kw):
        base = {
            "name": "tiny/shot",
            "method.name": "shot",
            "method.cls_par": 0.3,
            "source.checkpoint": str(src_dir),
            "optim.lr": 0.01,
            "optim.epochs": 3,
        }
        base.update(kw)
        return config_from_dict(tiny_config(root, out, **base))

    return make


@pytest.fixture(scope="module")
def source(two_domains, tmp_path_factory, tiny_config):
    out = tmp_path_factory.mktemp("runs")
    cfg = config_from_dict(tiny_config(two_domains, out, **{"name": "tiny/source", "method.name": "source"}))
    m = run_stage(cfg)
    return run_dir(cfg), m, out


def test_source_stage_outputs(source):
    d, m, _ = source
    assert {"source_F.pt", "source_B.pt", "source_C.pt", "metrics.json", "config.yaml", "log.txt"} <= {
        p.name for p in d.iterdir()
    }
    assert not (d / "state.pt").exists()
    assert m["stage"] == "source" and m["finished"] and m["val_accuracy"] > 90
    assert set(m["source_only"]) == {"target"}
    assert 1 <= m["best_epoch"] <= 5
    # entry i = the weights after i epochs; supervised training evaluates after each epoch
    assert m["history"][0] == {"epoch": 0} and [h["epoch"] for h in m["history"]] == [0, 1, 2, 3, 4, 5]
    assert list(m["history"][1]) == ["epoch", "loss", "loss_cls", "lr", "accuracy", "mean_class_accuracy", "time_s"]
    assert m["val_accuracy"] == max(h["accuracy"] for h in m["history"][1:])  # the best weights are kept
    assert json.loads((d / "metrics.json").read_text())["accuracy"] == m["accuracy"]


def test_adaptation_raises_target_accuracy_and_keeps_the_classifier(two_domains, source, tmp_path, adapt_cfg):
    src_dir, sm, _ = source
    cfg = adapt_cfg(two_domains, tmp_path, src_dir)
    m = run_stage(cfg)
    assert m["source_only_accuracy"] == pytest.approx(sm["source_only"]["target"], abs=1e-6)
    assert m["accuracy"] > m["source_only_accuracy"] + 10, (m["source_only_accuracy"], m["accuracy"])
    # metrics.json fields
    for k in ("task", "method", "seed", "accuracy", "per_class_accuracy", "source_only_accuracy", "history"):
        assert k in m
    assert len(m["per_class_accuracy"]) == 4
    assert [h["epoch"] for h in m["history"]] == [0, 1, 2, 3]
    assert all("accuracy" in h for h in m["history"]) and "pl_accuracy" in m["history"][0]
    assert m["history"][-1]["accuracy"] == m["accuracy"]  # the final epoch's accuracy is reported
    # the frozen classifier is bit-identical to the source one
    src, tgt = build_model(cfg), build_model(cfg)
    load_fbc(src, src_dir, "source")
    load_fbc(tgt, run_dir(cfg), "target")
    for k, v in src.netC.state_dict().items():
        assert torch.equal(v, tgt.netC.state_dict()[k]), k
    assert not torch.equal(src.netB.bottleneck.weight, tgt.netB.bottleneck.weight)


def test_resume_after_interruption_gives_the_same_result(two_domains, source, tmp_path, adapt_cfg):
    src_dir = source[0]
    full = run_stage(adapt_cfg(two_domains, tmp_path / "a", src_dir))
    cfg = adapt_cfg(two_domains, tmp_path / "b", src_dir)
    assert run_stage(cfg, stop_after_epoch=1) is None
    assert (run_dir(cfg) / "state.pt").exists() and not (run_dir(cfg) / "metrics.json").exists()
    resumed = run_stage(cfg)
    assert resumed["accuracy"] == full["accuracy"]
    assert [h.get("accuracy") for h in resumed["history"]] == [h.get("accuracy") for h in full["history"]]
    assert resumed["history"][2]["loss"] == pytest.approx(full["history"][2]["loss"], rel=1e-6)
    a, b = (torch.load(run_dir(c) / "target_F.pt") for c in (adapt_cfg(two_domains, tmp_path / "a", src_dir), cfg))
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k


def test_wall_time_of_a_resumed_run_counts_every_invocation(two_domains, source, tmp_path, adapt_cfg):
    """metrics.json's wall_time_s (the results pages' "wall s" column) is the run's, not the last invocation's."""
    cfg = adapt_cfg(two_domains, tmp_path, source[0])
    assert run_stage(cfg, stop_after_epoch=1) is None
    state_file = run_dir(cfg) / "state.pt"
    state = torch.load(state_file, weights_only=False)
    assert state["wall_s"] > 0
    state["wall_s"] = 1000.0  # as if the interrupted invocation had taken 1000 s up to its saved epoch
    torch.save(state, state_file)
    started = time.time()
    resumed = run_stage(cfg)
    this_invocation = time.time() - started
    assert 1000.0 < resumed["wall_time_s"] <= 1000.0 + this_invocation + 0.05
    saved = json.loads((run_dir(cfg) / "metrics.json").read_text())
    assert saved["wall_time_s"] == resumed["wall_time_s"]


def test_finished_run_is_not_redone(two_domains, source, tmp_path, adapt_cfg):
    cfg = adapt_cfg(two_domains, tmp_path, source[0], **{"optim.epochs": 1})
    first = run_stage(cfg)
    stamp = (run_dir(cfg) / "metrics.json").stat().st_mtime_ns
    again = run_stage(cfg)
    saved = json.loads((run_dir(cfg) / "metrics.json").read_text())
    assert again == {**saved, "_dir": str(run_dir(cfg))} and again["accuracy"] == first["accuracy"]
    assert first["_dir"] == str(run_dir(cfg))  # the folder it ran in, as sfda.results.table.collect names it
    assert (run_dir(cfg) / "metrics.json").stat().st_mtime_ns == stamp
    forced = run_stage(cfg, force=True)
    assert forced["accuracy"] == first["accuracy"]
    assert (run_dir(cfg) / "metrics.json").stat().st_mtime_ns != stamp


def test_same_seed_replays_and_another_seed_differs(two_domains, source, tmp_path, adapt_cfg):
    a = run_stage(adapt_cfg(two_domains, tmp_path / "a", source[0], **{"optim.epochs": 2}))
    b = run_stage(adapt_cfg(two_domains, tmp_path / "b", source[0], **{"optim.epochs": 2}))
    c = run_stage(adapt_cfg(two_domains, tmp_path / "c", source[0], **{"optim.epochs": 2, "seed": 1}))
    strip = lambda h: [{k: v for k, v in e.items() if k != "time_s"} for e in h]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])
    assert [h.get("loss") for h in a["history"]] != [h.get("loss") for h in c["history"]]


def test_shot_im_runs_without_pseudo_labels(two_domains, source, tmp_path, adapt_cfg):
    m = run_stage(adapt_cfg(two_domains, tmp_path, source[0], **{"method.cls_par": 0.0, "optim.epochs": 1}))
    assert m["label"] == "SHOT-IM" and "pl_accuracy" not in m["history"][0]


def test_checkpoint_for_other_class_count_is_refused(two_domains, source, tmp_path, adapt_cfg):
    from sfda.errors import CheckpointError

    cfg = adapt_cfg(two_domains, tmp_path, source[0], **{"data.num_classes": 5})
    with pytest.raises(CheckpointError, match="has 4 classes but the config has data.num_classes=5"):
        run_stage(cfg)


def test_a_non_finite_loss_stops_with_the_epoch_and_keeps_finished_epochs(
    two_domains, source, tmp_path, monkeypatch, adapt_cfg
):
    from sfda.errors import SfdaError
    from sfda.methods.shot import SHOT

    src_dir, _, _ = source
    cfg = adapt_cfg(two_domains, tmp_path, src_dir)
    real = SHOT.training_step

    def poisoned(self, batch, info):  # finite in the first epoch, NaN from the second on
        out = real(self, batch, info)
        if info.epoch >= 1:
            out.reduced_loss = out.reduced_loss * float("nan")
        return out

    monkeypatch.setattr(SHOT, "training_step", poisoned)
    with pytest.raises(SfdaError, match=r"^the loss became nan during epoch 2 \(by iteration \d+\); lower optim.lr"):
        run_stage(cfg)
    state = torch.load(run_dir(cfg) / "state.pt", weights_only=False)
    assert state["epoch_done"] == 1  # the finished first epoch is kept for a resume


# -- the per-epoch record and the history ------------------------------------------------------------------
def _records():
    from sfda.engine.records import EpochRecord

    return [
        EpochRecord(
            0,
            start_eval={"accuracy": 50.0, "mean_class_accuracy": 40.0},
            method_stats={"pl_accuracy": 60.0},
            train_logs={"loss": 1.5, "lr": 0.01},
            weighting={"weight_mean": 1.6},
            time_s=2.0,
        ),
        EpochRecord(
            1,
            start_eval={"accuracy": 70.0, "mean_class_accuracy": 65.0},
            method_stats={"pl_accuracy": 75.0},
            train_logs={"loss": 0.5, "lr": 0.005},
            time_s=3.0,
        ),
    ]


def test_history_entry_i_describes_the_weights_after_i_epochs():
    from sfda.engine.records import EpochRecord, history

    entries = history(_records(), {"accuracy": 80.0, "mean_class_accuracy": 78.0})
    assert entries == [
        {"epoch": 0, "accuracy": 50.0, "mean_class_accuracy": 40.0, "pl_accuracy": 60.0},
        {
            "epoch": 1,
            "loss": 1.5,
            "lr": 0.01,
            "w_weight_mean": 1.6,
            "time_s": 2.0,
            "accuracy": 70.0,
            "mean_class_accuracy": 65.0,
            "pl_accuracy": 75.0,
        },
        {"epoch": 2, "loss": 0.5, "lr": 0.005, "time_s": 3.0, "accuracy": 80.0, "mean_class_accuracy": 78.0},
    ]
    assert [list(e) for e in entries][1] == [
        "epoch",
        "loss",
        "lr",
        "w_weight_mean",
        "time_s",
        "accuracy",
        "mean_class_accuracy",
        "pl_accuracy",
    ]  # metrics.json's key order
    # supervised training evaluates after each epoch: the evaluation sits before the time, nothing at epoch 0
    after = [
        EpochRecord(0, train_logs={"loss": 2.0}, end_eval={"accuracy": 30.0, "mean_class_accuracy": 20.0}, time_s=1.0)
    ]
    assert [list(e.items()) for e in history(after)] == [
        [("epoch", 0)],
        [("epoch", 1), ("loss", 2.0), ("accuracy", 30.0), ("mean_class_accuracy", 20.0), ("time_s", 1.0)],
    ]
    assert history([]) == [{"epoch": 0}]
    assert EpochRecord(**_records()[0].to_dict()) == _records()[0]  # the resume state round-trips


class _FakeLog:
    def __init__(self):
        self.calls = []

    def histogram(self, tag, values, step):
        self.calls.append(("histogram", tag, step))

    def scalars(self, values, step, prefix=""):
        self.calls.append(("scalars", dict(values), step, prefix))


def test_the_run_logs_weighting_reports_and_keeps_the_first_and_last_samples(tmp_path):
    from sfda.engine.weighting_output import WeightingOutput
    from sfda.weighting.base import WeightingReport

    def report(value):
        return WeightingReport(
            stats={"weight_mean": value},
            histograms={"ns/score": torch.tensor([value])},
            scalars={"ns_class_score/class_000": value},
            samples={"scores": torch.tensor([value])},
            samples_file="ns_scores.pt",
        )

    log = _FakeLog()
    out = WeightingOutput(tmp_path, log, epochs=3)
    assert [out.keeps_samples(e) for e in range(3)] == [True, False, True]
    assert out.record(0, report(1.0)) == {"weight_mean": 1.0}
    assert log.calls == [("histogram", "ns/score", 1), ("scalars", {"ns_class_score/class_000": 1.0}, 1, "")]
    state = out.state_dict()
    resumed = WeightingOutput(tmp_path, _FakeLog(), epochs=3)  # a resumed run keeps the first epoch's arrays
    resumed.load_state_dict(state)
    resumed.record(1, WeightingReport(stats={"weight_mean": 2.0}))
    resumed.record(2, report(3.0))
    saved = torch.load(tmp_path / "ns_scores.pt")
    assert (
        set(saved) == {"first", "last"}
        and saved["first"]["scores"].item() == 1.0
        and saved["last"]["scores"].item() == 3.0
    )
    assert WeightingOutput(tmp_path, log, 1).record(0, WeightingReport()) == {}


def test_resume_with_ns_gives_the_same_history_and_saved_scores(two_domains, source, tmp_path, adapt_cfg):
    kw = {"weighting": {"name": "ns", "m": 4, "sigma": 0.6}, "sampler": {"name": "cbs"}}
    full_cfg = adapt_cfg(two_domains, tmp_path / "a", source[0], **kw)
    full = run_stage(full_cfg)
    cfg = adapt_cfg(two_domains, tmp_path / "b", source[0], **kw)
    assert run_stage(cfg, stop_after_epoch=2) is None
    assert set(torch.load(run_dir(cfg) / "ns_scores.pt")) == {"first"}
    resumed = run_stage(cfg)
    strip = lambda h: [{k: v for k, v in e.items() if k != "time_s"} for e in h]  # noqa: E731
    assert strip(resumed["history"]) == strip(full["history"]) and resumed["accuracy"] == full["accuracy"]
    a, b = (torch.load(run_dir(c) / "ns_scores.pt") for c in (full_cfg, cfg))
    assert set(a) == set(b) == {"first", "last"} and a["last"]["epoch"] == 3
    for part in ("first", "last"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]) if torch.is_tensor(v) else v == b[part][k], (part, k)
