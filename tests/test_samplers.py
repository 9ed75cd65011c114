"""Class-aware samplers: empirical class frequencies against the formulas, PBS's schedule, empty classes,
and the samplers inside source training and SHOT (pseudo-label counts)."""

import math

import pytest
import torch

from sfda.config import config_from_dict
from sfda.engine.runner import run_dir, run_label, run_stage
from sfda.errors import ConfigError, SfdaError
from sfda.registry import SAMPLERS
from sfda.samplers import build_sampler
from sfda.samplers.class_aware import ProgressivelyBalancedSampler

# class 3 is empty; -1 marks an unlabelled sample
COUNTS = [400, 100, 25, 0, 75]
LABELS = torch.cat([torch.full((n,), k) for k, n in enumerate(COUNTS)] + [torch.full((10,), -1)])
NZ = [k for k, n in enumerate(COUNTS) if n > 0]
N = sum(COUNTS)


pytestmark = pytest.mark.usefixtures("one_thread")


def _sampler(name):
    return build_sampler(config_from_dict({"sampler": {"name": name}}), len(COUNTS))


def _draw(sampler, epoch=0, epochs=1, rounds=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = sampler.build(LABELS, epoch, epochs, g)
    idx = torch.cat([torch.tensor(list(iter(s))) for _ in range(rounds)])
    return idx, s


def _class_freq(idx):
    lab = LABELS[idx]
    return torch.bincount(lab.clamp_min(0), minlength=len(COUNTS)).double() / idx.numel(), lab


def _expected(probs_nz):
    out = torch.zeros(len(COUNTS), dtype=torch.double)
    out[NZ] = torch.tensor(probs_nz, dtype=torch.double)
    return out


def test_cbs_draws_every_non_empty_class_equally_often():
    idx, s = _draw(_sampler("cbs"))
    assert len(s) == LABELS.numel()  # one epoch = one pass over the set's size
    freq, lab = _class_freq(idx)
    assert (lab >= 0).all()  # unlabelled samples are never drawn
    assert torch.allclose(freq, _expected([0.25] * 4), atol=0.01)
    assert freq[3] == 0  # the empty class is dropped


def test_srs_draws_classes_by_square_root_counts():
    idx, _ = _draw(_sampler("srs"))
    freq, _ = _class_freq(idx)
    roots = [math.sqrt(COUNTS[k]) for k in NZ]
    assert torch.allclose(freq, _expected([r / sum(roots) for r in roots]), atol=0.01)


def test_pbs_goes_from_instance_balanced_to_class_balanced():
    pbs = _sampler("pbs")
    T = 5
    ib = [COUNTS[k] / N for k in NZ]
    for epoch in range(T):
        lam = epoch / (T - 1)
        assert ProgressivelyBalancedSampler.lam(epoch, T) == pytest.approx(lam)
        idx, _ = _draw(pbs, epoch, T, rounds=30, seed=epoch)
        freq, _ = _class_freq(idx)
        want = _expected([(1 - lam) * p + lam / len(NZ) for p in ib])
        assert torch.allclose(freq, want, atol=0.012), (epoch, freq, want)
    # exact per-sample probabilities at both ends and the middle
    w0 = pbs.sample_weights(LABELS, 0, T)
    assert torch.allclose(w0[LABELS >= 0], torch.full((N,), 1.0 / N, dtype=torch.double))
    wT = pbs.sample_weights(LABELS, T - 1, T)
    for k in NZ:
        assert wT[LABELS == k].sum().item() == pytest.approx(0.25)
    assert ProgressivelyBalancedSampler.lam(0, 1) == 0.0


def test_samples_within_a_class_are_equally_likely_and_weights_sum_to_one():
    for name in ("cbs", "srs", "pbs"):
        w = _sampler(name).sample_weights(LABELS, 1, 3)
        assert w.sum().item() == pytest.approx(1.0)
        assert (w[LABELS == -1] == 0).all()
        for k in NZ:
            wk = w[LABELS == k]
            assert torch.allclose(wk, wk[0].expand_as(wk))


def test_same_generator_same_order_and_labels_for_tables():
    a, _ = _draw(_sampler("srs"), rounds=1, seed=7)
    b, _ = _draw(_sampler("srs"), rounds=1, seed=7)
    assert torch.equal(a, b)
    assert {n: SAMPLERS.get(n).label for n in ("cbs", "srs", "pbs")} == {"cbs": "CBS", "srs": "SRS", "pbs": "PBS"}
    cfg = config_from_dict({"method": {"name": "shot"}, "sampler": {"name": "pbs"}})
    assert run_label(cfg) == "SHOT+PBS"


def test_the_none_sampler_is_a_real_object_that_shuffles():
    from sfda.samplers.base import Shuffle

    shuffle = build_sampler(config_from_dict({}), 5)
    assert isinstance(shuffle, Shuffle) and shuffle.name == "none"
    assert shuffle.build(LABELS, 0, 1, torch.Generator()) is None  # None: the loader shuffles
    assert shuffle.build(None, 0, 1, torch.Generator()) is None
    # a class-aware sampler shuffles plainly when the method has no labels for the training set
    assert _sampler("cbs").build(None, 0, 1, torch.Generator()) is None


def test_samplers_declare_typed_parameters():
    from sfda.params import NoParams

    for name in SAMPLERS.names():
        cls = SAMPLERS.get(name)
        assert not hasattr(cls, "defaults") and issubclass(cls.Params, NoParams), name
        assert build_sampler(config_from_dict({"sampler": {"name": name}}), 3).hparams == NoParams()
    with pytest.raises(ConfigError, match=r"unknown key 'sampler.power'"):
        config_from_dict({"sampler": {"name": "srs", "power": 0.5}})


def test_sampler_errors():
    with pytest.raises(ConfigError, match="sampler.name"):
        config_from_dict({"sampler": {"name": "cbz"}})
    with pytest.raises(SfdaError, match="no sample has a label"):
        _sampler("cbs").sample_weights(torch.full((4,), -1), 0, 1)


def test_samplers_in_source_training_and_in_shot_use_the_current_labels(
    tmp_path_factory, make_two_domain_set, tiny_config
):
    # an imbalanced target: pseudo-label counts decide the draws
    root = make_two_domain_set(tmp_path_factory.mktemp("smp"), per_class=6, seed=5)
    out = tmp_path_factory.mktemp("runs")
    src = config_from_dict(
        tiny_config(
            root,
            out,
            **{
                "name": "src_cbs",
                "method.name": "source",
                "optim.epochs": 1,
                "data.batch_size": 8,
                "sampler": {"name": "cbs"},
            },
        )
    )
    m = run_stage(src)
    assert m["finished"] and m["label"] == "Source+CBS"

    seen = {}
    from sfda.samplers.class_aware import ClassBalancedSampler

    orig = ClassBalancedSampler.build

    def spy(self, labels, epoch, epochs, generator):
        seen[epoch] = labels.clone()
        return orig(self, labels, epoch, epochs, generator)

    ClassBalancedSampler.build = spy
    try:
        a = run_stage(
            config_from_dict(
                tiny_config(
                    root,
                    out,
                    **{
                        "name": "shot_cbs",
                        "method.name": "shot",
                        "source.checkpoint": str(run_dir(src)),
                        "optim.epochs": 2,
                        "data.batch_size": 8,
                        "sampler": {"name": "cbs"},
                    },
                )
            )
        )
    finally:
        ClassBalancedSampler.build = orig
    assert a["finished"] and a["label"] == "SHOT+CBS"
    assert set(seen) == {0, 1} and all(v.numel() == 24 for v in seen.values())
    # the labels handed to the sampler each epoch are that epoch's refreshed pseudo-labels: their agreement
    # with the ground truth is the pseudo-label accuracy SHOT logged at that refresh
    truth = torch.tensor([k for k in range(4) for _ in range(6)])
    for e, v in seen.items():
        assert 100.0 * (v == truth).float().mean().item() == pytest.approx(a["history"][e]["pl_accuracy"], abs=1e-4)
