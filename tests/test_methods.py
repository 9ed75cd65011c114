"""NRC, AaD and CoWA-JMDS: losses against hand-computed values, GMM labels against an independent computation,
typed parameters checked at load, the shared classifier policy, short runs with and without NS, and the external
example method (plugin). Resume tests for every method: test_resume_methods.py."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml

from sfda.cli import main
from sfda.config import config_from_dict, load_config
from sfda.datatypes import Batch, StepInfo
from sfda.engine.runner import run_dir, run_stage
from sfda.errors import ConfigError, SfdaError
from sfda.methods.aad import attraction, dispersion
from sfda.methods.cowa import CoWA, gmm_pseudo_labels, mixup_per_sample
from sfda.methods.nrc import NRC, nrc_neighbourhood, nrc_per_sample
from sfda.methods.shot import SHOT
from sfda.neighbours import MemoryBank
from sfda.weighting import WeightInput
from sfda.weighting.ns import NaturalSelection

ROOT = Path(__file__).resolve().parents[1]


def circle(angles=(0.0, 0.1, 0.25, 0.45, 0.7, 1.0)):
    """Six unit vectors at these angles (as in test_neighbours.py): neighbours in the order of the angle gaps."""
    a = torch.tensor(angles, dtype=torch.float32)
    return torch.stack([a.cos(), a.sin()], dim=1)


# Bank predictions S_0..S_5 of the six circle samples (neighbours: see test_neighbours.EXPECTED)
S = torch.tensor(
    [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1 / 3, 1 / 3, 1 / 3]]
)
P2 = torch.tensor([0.5, 0.3, 0.2])  # current prediction of sample 2
P4 = torch.tensor([0.1, 0.1, 0.8])  # current prediction of sample 4


def circle_bank():
    bank = MemoryBank("torch")
    bank.fill(circle(), S)
    return bank


# -- NRC ------------------------------------------------------------------------------------------------
def test_nrc_neighbourhood_and_loss_by_hand():
    bank = circle_bank()
    idx = torch.tensor([2, 4])
    near, a_near, expanded, a_exp = nrc_neighbourhood(bank, bank.features[idx], idx, k=2, kk=1, r=0.1)
    # 2's neighbours are 1 and 3; 1's nearest other is 0, 3's is 2 -> only 3 is reciprocal.
    # 4's neighbours are 3 and 5; 3's nearest other is 2, 5's is 4 -> only 5 is reciprocal.
    assert near.tolist() == [[1, 3], [3, 5]]
    assert expanded.tolist() == [[0, 2], [2, 4]]
    assert torch.allclose(a_near, torch.tensor([[0.1, 1.0], [0.1, 1.0]]))
    assert torch.allclose(a_exp, torch.full((2, 2), 0.1))
    probs = torch.stack([P2, P4])
    loss = nrc_per_sample(probs, S[near], a_near, S[expanded], a_exp)
    # l_2 = -(0.1 S1.p + 1 S3.p) - 0.1 (S0.p + S2.p) = -(0.1*0.4 + 0.3) - 0.1*(0.5 + 0.29) = -0.419
    # l_4 = -(0.1 S3.p + 1 S5.p) - 0.1 (S2.p + S4.p) = -(0.1*0.1 + 1/3) - 0.1*(0.45 + 0.8)
    assert loss[0].item() == pytest.approx(-0.419, abs=1e-6)
    assert loss[1].item() == pytest.approx(-(0.01 + 1 / 3) - 0.125, abs=1e-6)


class FeatureModel(nn.Module):
    """features = the flattened input; logits = features @ W (a stand-in for SFDANet, netC = the linear map)."""

    def __init__(self, W):
        super().__init__()
        self.netF, self.netB = nn.Identity(), nn.Identity()
        self.netC = nn.Linear(W.shape[0], W.shape[1], bias=False)
        self.netC.weight.data = W.t().clone()

    def forward(self, x, return_features=False):
        x = x.flatten(1)
        logits = self.netC(x)
        return (x, logits) if return_features else logits


def test_nrc_step_updates_the_bank_before_the_search_and_excludes_itself():
    model = FeatureModel(torch.tensor([[2.0, -1.0, 0.0], [0.0, 1.0, 3.0]]))
    m = NRC(model, 3, {"k": 2, "kk": 1, "knn_backend": "torch"}, None)
    m.setup(list(range(6)), "cpu")
    m.bank.fill(circle(), S)
    x = circle()[[2, 4]] * 2.0
    out = m.training_step(Batch(x, torch.zeros(2, dtype=torch.long), torch.tensor([2, 4])), StepInfo(0, 1, 0, 10))
    p = torch.softmax(model(x), dim=1)
    assert torch.allclose(m.bank.scores[[2, 4]], p) and torch.allclose(m.bank.features[[2, 4]], circle()[[2, 4]])
    bank_s = S.clone()
    bank_s[[2, 4]] = p  # the batch's own rows are current when the neighbours' predictions are read
    a = torch.tensor([[0.1, 1.0], [0.1, 1.0]])
    want = nrc_per_sample(
        p, bank_s[torch.tensor([[1, 3], [3, 5]])], a, bank_s[torch.tensor([[0, 2], [2, 4]])], torch.full((2, 2), 0.1)
    )
    assert torch.allclose(out.per_sample, want, atol=1e-6)
    assert out.targets.tolist() == p.argmax(1).tolist()
    pbar = p.mean(0)
    assert out.reduced_loss.item() == pytest.approx((pbar * torch.log(pbar + 1e-5)).sum().item(), abs=1e-6)
    out.per_sample.sum().backward()  # the loss reaches the model, the bank does not carry gradient
    assert model.netC.weight.grad is not None and not m.bank.scores.requires_grad


def test_k_switch_is_explicit_and_off_by_default():
    m = NRC(FeatureModel(torch.eye(2, 3)), 3, {}, None)
    late = StepInfo(9, 10, 99, 100)
    assert m.current_k(late, "k") == 3 and m.current_k(late, "kk") == 2
    m = NRC(FeatureModel(torch.eye(2, 3)), 3, {"switch_k": 5, "switch_kk": 4}, None)
    assert m.current_k(StepInfo(0, 10, 50, 100), "k") == 3  # not past half yet
    assert m.current_k(StepInfo(5, 10, 51, 100), "k") == 5 and m.current_k(StepInfo(5, 10, 51, 100), "kk") == 4


@pytest.mark.parametrize(
    "params, msg",
    [
        ({"k": 0}, r"'method.k' must be in \[1, inf\], got 0 \(method 'nrc'\)"),
        ({"knn_backend": "annoy"}, "'method.knn_backend' must be one of auto, torch, faiss, got 'annoy'"),
        ({"switch_progress": 1.5}, r"'method.switch_progress' must be in \[0, 1\]"),
        ({"switch_kk": -1}, r"'method.switch_kk' must be in \[0, inf\]"),
        ({"r": 2.0}, r"'method.r' must be in \[0, 1\], got 2.0"),
    ],
)
def test_nrc_bad_settings_are_config_errors_at_load(tmp_path, params, msg, tiny_config):
    overrides = {"method.name": "nrc", **{f"method.{k}": v for k, v in params.items()}}
    with pytest.raises(ConfigError, match=msg):
        config_from_dict(tiny_config(tmp_path, tmp_path, **overrides))
    with pytest.raises(ConfigError, match=msg.split(" must")[0]):  # code constructing the method: the same check
        NRC(FeatureModel(torch.eye(2, 3)), 3, params, None)


@pytest.mark.parametrize(
    "method, key, value, msg",
    [
        ("cowa", "coeff", "jmdss", "must be one of jmds, lpg, ppl, none, got 'jmdss'"),
        ("cowa", "alpha", -0.1, "must be in [0, inf], got -0.1"),
        ("cowa", "em_rounds", -1, "must be in [0, inf], got -1"),
        ("aad", "k", 0, "must be in [1, inf], got 0"),
        ("shot", "distance", "manhattan", "must be one of cosine, euclidean, got 'manhattan'"),
        ("shot", "pl_warmup_epochs", 1.5, "must be an integer, got 1.5"),
    ],
)
def test_bad_method_values_stop_the_config_load_with_one_line(tmp_path, method, key, value, msg, tiny_config):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path, tmp_path, **{"method.name": method, f"method.{key}": value})))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.strip().startswith(f"{key}:"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}:{line}: 'method.{key}' {msg} (method '{method}')"
    with pytest.raises(ConfigError) as err:  # the same from the command line
        load_config(path, [f"method.{key}=1", f"method.{key}={value}"])
    assert str(err.value) == f"command line: 'method.{key}' {msg} (method '{method}')"


def test_typed_parameters_from_a_section_a_params_object_or_keywords():
    model = FeatureModel(torch.eye(2, 3))
    m = NRC(model, 3, {"name": "nrc", "k": 4, "knn_backend": "TORCH"}, None)
    assert isinstance(m.hparams, NRC.Params) and m.hparams.k == 4 and m.hparams.knn_backend == "torch"
    assert m.hparams.kk == 2 and m.hparams.r == 0.1 and m.hparams.switch_progress == 0.5  # the defaults
    assert NRC(model, 3, m.hparams).hparams is m.hparams
    assert NRC(model, 3, m.hparams, kk=5).hparams.to_dict() == {**m.hparams.to_dict(), "kk": 5}
    assert NRC(model, 3, {"k": 4}, None, r=0.5).hparams.r == 0.5
    cowa = CoWA(model, 3, coeff="PPL", em_rounds=2)
    assert cowa.hparams.coeff == "ppl" and cowa.hparams.em_rounds == 2 and cowa.hparams.alpha == 0.2
    shot = SHOT(model, 3, {"pl_loss": {"name": "gce", "q": 0.5}})
    assert shot.hparams.pl_loss == {"name": "gce", "q": 0.5} and shot.hparams.cls_par == 0.3
    assert SHOT(model, 3).hparams.pl_loss == {"name": "ce"}
    for cls in (NRC, CoWA, SHOT):  # no copies of the parameters on the method itself
        assert not hasattr(cls, "defaults") and not hasattr(cls(model, 3), "k")


@pytest.mark.parametrize("cls, frozen", [(SHOT, True), (NRC, False), (CoWA, False)])
def test_classifier_policy_lives_in_the_base(cls, frozen):
    for freeze_classifier in (frozen, not frozen):
        model = FeatureModel(torch.randn(3, 2))
        model.netF = nn.BatchNorm1d(3)
        model.netC = nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 2))
        m = cls(model, 2, {} if freeze_classifier == frozen else {"freeze_classifier": freeze_classifier})
        assert m.hparams.freeze_classifier == freeze_classifier
        m.setup(list(range(6)), "cpu")
        m.train_mode()
        assert model.training and model.netF.training
        assert model.netC.training != freeze_classifier
        assert all(p.requires_grad != freeze_classifier for p in model.netC.parameters())
        assert all(p.requires_grad for p in model.netF.parameters())


# -- AaD ------------------------------------------------------------------------------------------------
def test_aad_attraction_and_dispersion_by_hand():
    bank = circle_bank()
    idx = torch.tensor([2, 4])
    near = bank.neighbours(bank.features[idx], 2, exclude=idx)
    assert near.tolist() == [[1, 3], [3, 5]]
    probs = torch.stack([P2, P4]).requires_grad_(True)
    a = attraction(probs, S[near])
    # a_2 = -(S1.p + S3.p) = -(0.4 + 0.3); a_4 = -(S3.p + S5.p) = -(0.1 + 1/3)
    assert a.tolist() == pytest.approx([-0.7, -(0.1 + 1 / 3)], abs=1e-6)
    d = dispersion(probs)
    # two samples: mean_i sum_{m != i} p_i . p_m = p_2 . p_4 = 0.05 + 0.03 + 0.16
    assert d.item() == pytest.approx(0.24, abs=1e-6)
    d.backward()  # gradient through both factors: d(p_2 . p_4)/dp_2 = p_4
    assert torch.allclose(probs.grad, torch.stack([P4, P2]))


def test_aad_dispersion_weight_decay():
    from sfda.methods.aad import AaD

    m = AaD(FeatureModel(torch.eye(2, 3)), 3, {"alpha": 2.0, "beta": 5.0}, None)
    assert m.dispersion_weight(StepInfo(0, 1, 0, 10)) == pytest.approx(2.0)
    assert m.dispersion_weight(StepInfo(0, 1, 5, 10)) == pytest.approx(2.0 * 6.0**-5)
    m = AaD(FeatureModel(torch.eye(2, 3)), 3, {}, None)
    assert m.dispersion_weight(StepInfo(0, 1, 9, 10)) == 1.0  # beta 0: constant


# -- CoWA -----------------------------------------------------------------------------------------------
def test_cowa_weight_mixup_loss_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # softmax: [1/2, 1/2] and [3/4, 1/4]
    y, c = torch.tensor([0, 1]), torch.tensor([1.0, 0.5])
    lam, perm = torch.tensor([0.7, 0.4]), torch.tensor([1, 0])
    per_sample, mixed = mixup_per_sample(logits, y, c, lam, perm, 2)
    # mixed 0: y~ = [0.7, 0.3], c~ = 0.7*1 + 0.3*0.5 = 0.85, CE = log 2
    # mixed 1: y~ = [0.6, 0.4], c~ = 0.4*0.5 + 0.6*1 = 0.8, CE = -(0.6 log 3/4 + 0.4 log 1/4)
    m0 = 0.85 * math.log(2)
    m1 = 0.8 * -(0.6 * math.log(0.75) + 0.4 * math.log(0.25))
    assert mixed.tolist() == pytest.approx([m0, m1], abs=1e-6)
    # real sample 0 carries lam_0 of mixed 0 and (1 - lam_1) of mixed 1 (its partner's image), and so on
    assert per_sample.tolist() == pytest.approx([0.7 * m0 + 0.6 * m1, 0.4 * m1 + 0.3 * m0], abs=1e-6)
    assert per_sample.sum().item() == pytest.approx(mixed.sum().item(), abs=1e-6)


def test_cowa_weights_are_mixed_like_jmds():
    torch.manual_seed(0)
    B, K = 8, 3
    logits, y = torch.randn(B, K), torch.randint(0, K, (B,))
    lam, perm = torch.rand(B), torch.randperm(B)
    w = torch.rand(B)
    per, _ = mixup_per_sample(logits, y, torch.ones(B), lam, perm, K)
    # mean_j w_j per_j == mean_i (lam_i w_i + (1 - lam_i) w_perm(i)) l_i  (mixed weight on each mixed loss)
    _, mixed_w = mixup_per_sample(logits, y, w, lam, perm, K)
    assert (w * per).mean().item() == pytest.approx(mixed_w.mean().item(), abs=1e-6)


def _reference_gmm(f, p, eps, rounds):
    """CoWA's GMM written independently with numpy/scipy."""
    from scipy.stats import multivariate_normal

    N, K = p.shape

    def step(resp, pi, mu):
        out = np.zeros((N, K))
        for k in range(K):
            d = f - mu[k]
            cov = (d * resp[:, k : k + 1]).T @ d / resp[:, k].sum() + eps * np.eye(f.shape[1])
            out[:, k] = np.log(pi[k]) + multivariate_normal(mu[k], cov).logpdf(f)
        return out

    pi = p.sum(0)
    mu = p.T @ f / pi[:, None]
    lj = step(np.full_like(p, 1.0 / K), pi, mu)
    for _ in range(rounds):
        gamma = np.exp(lj - lj.max(1, keepdims=True))
        gamma /= gamma.sum(1, keepdims=True)
        pi = gamma.sum(0)
        mu = gamma.T @ f / pi[:, None]
        lj = step(gamma, pi, mu)
    lp = lj - np.log(np.exp(lj - lj.max(1, keepdims=True)).sum(1, keepdims=True)) - lj.max(1, keepdims=True)
    return lp


def test_gmm_labels_and_jmds_match_an_independent_computation():
    rng = np.random.default_rng(0)
    centres = np.array([[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0]])
    truth = np.repeat(np.arange(3), 20)
    f = centres[truth] + rng.normal(0, 0.6, (60, 3))
    # noisy predictions: 40 % of the samples lean to a wrong class
    p = np.full((60, 3), 0.15)
    lean = np.where(rng.random(60) < 0.4, (truth + 1) % 3, truth)
    p[np.arange(60), lean] = 0.7
    g = gmm_pseudo_labels(torch.tensor(f), torch.tensor(p), epsilon=1e-6, em_rounds=1, normalize=False)
    ref = _reference_gmm(f, p, 1e-6, 1)
    assert np.allclose(g.log_posterior.double().numpy(), ref, atol=1e-4)
    assert g.labels.tolist() == ref.argmax(1).tolist()
    assert (g.labels.numpy() == truth).mean() > 0.95  # the clusters fix the predictions' mistakes
    top2 = np.sort(ref, axis=1)[:, ::-1]
    gap = top2[:, 0] - top2[:, 1]
    assert np.allclose(g.lpg.numpy(), gap / gap.max(), atol=1e-4) and g.lpg.max().item() == pytest.approx(1.0)
    assert np.allclose(g.ppl.numpy(), p[np.arange(60), ref.argmax(1)], atol=1e-6)
    assert torch.allclose(g.coefficient("jmds"), g.lpg * g.ppl)
    assert torch.equal(g.coefficient("none"), torch.ones(60))


def test_gmm_drops_a_class_without_mass():
    f = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    p = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])  # class 2 never predicted
    g = gmm_pseudo_labels(f, p, normalize=False)
    assert g.labels.tolist() == [0, 0, 1, 1]
    assert torch.isfinite(g.lpg).all() and torch.isinf(g.log_posterior[:, 2]).all()


def test_cowa_step_scores_real_images_with_pseudo_labels():
    torch.manual_seed(0)
    model = FeatureModel(torch.randn(4, 3))
    m = CoWA(model, 3, {"alpha": 0.2}, None)
    m.setup(list(range(8)), "cpu")
    m.pseudo = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    m.confidence = torch.linspace(0.1, 0.8, 8)
    x = torch.randn(4, 1, 2, 2)
    idx = torch.tensor([5, 0, 7, 2])
    out = m.training_step(Batch(x, torch.zeros(4, dtype=torch.long), idx), StepInfo(0, 1, 0, 1))
    assert out.weight_images is x and out.targets.tolist() == [2, 0, 1, 2] and out.logits is None
    assert out.per_sample.shape == (4,) and out.per_sample.requires_grad
    with pytest.raises(ConfigError, match="method.coeff"):
        CoWA(model, 3, {"coeff": "entropy"}, None)
    # NS sees the real images and their pseudo-labels
    ns = NaturalSelection(3, m=2)
    w = ns(WeightInput(model, out.weight_images, out.targets))
    assert w.shape == (4,)


# -- runs on the generated two-domain set ---------------------------------------------------------------
@pytest.fixture(scope="module")
def source(two_domains, tmp_path_factory, tiny_config):
    out = tmp_path_factory.mktemp("mruns")
    cfg = config_from_dict(tiny_config(two_domains, out, **{"name": "tiny/source", "method.name": "source"}))
    m = run_stage(cfg)
    assert m["val_accuracy"] > 90
    return run_dir(cfg)


@pytest.fixture(scope="module")
def adapt_cfg(tiny_config):
    """``adapt_cfg(root, out, src, method, **{"dotted.key": value})`` -> a config adapting ``src`` with ``method``."""

    def make(root, out, src, method, **kw):
        base = {
            "name": f"tiny/{method}",
            "method.name": method,
            "source.checkpoint": str(src),
            "optim.epochs": 2,
            "optim.lr": 0.01,
            "optim.classifier_lr_mult": 0.1,
        }
        base.update(kw)
        return config_from_dict(tiny_config(root, out, **base))

    return make


@pytest.mark.parametrize(
    "method, extra", [("nrc", {}), ("aad", {}), ("cowa", {"method.coeff": "none"}), ("cowa", {"method.coeff": "jmds"})]
)
def test_method_with_ns_weights(two_domains, source, tmp_path, method, extra, adapt_cfg):
    cfg = adapt_cfg(
        two_domains,
        tmp_path,
        source,
        method,
        **{"weighting.name": "ns", "weighting.m": 4, "weighting.sigma": 0.6, "optim.epochs": 1, **extra},
    )
    m = run_stage(cfg)
    h = m["history"][1]
    assert m["label"].endswith("+NS-WS") and m["weighting"] == "ns"
    assert h["w_weight_std"] > 0 and h["w_weight_min"] >= 0.6 and h["w_weight_mean"] == pytest.approx(1.6, abs=1e-4)
    assert m["accuracy"] > m["source_only_accuracy"]


@pytest.mark.parametrize("cls", [NRC, CoWA])
def test_methods_indexing_the_target_need_it_as_evaluation_set(cls):
    m = cls(FeatureModel(torch.eye(2, 3)), 3, {}, None)
    m.setup(list(range(6)), "cpu")
    from sfda.datatypes import Inference

    with pytest.raises(SfdaError, match="evaluation set has 5 images but the training set 6"):
        m.on_epoch_start(0, Inference(torch.randn(5, 2), torch.randn(5, 3), torch.zeros(5, dtype=torch.long)))


# -- the external example method (docs/adding-a-method.md) ----------------------------------------------
def test_example_plugin_method_runs_from_a_config(two_domains, source, tmp_path, capsys, tiny_config):
    cfg = tiny_config(
        two_domains,
        tmp_path,
        **{
            "name": "tiny/entmin",
            "method.name": "entmin_pl",
            "method.pl_par": 0.3,
            "source.checkpoint": str(source),
            "optim.epochs": 1,
            "weighting.name": "ns",
        },
    )
    path = tmp_path / "entmin.yaml"
    path.write_text(yaml.safe_dump(cfg))
    plugin = str(ROOT / "examples" / "my_method.py")
    assert main(["--plugin", plugin, "adapt", "-c", str(path)]) == 0
    res = yaml.safe_load((tmp_path / "tiny" / "entmin" / "seed0" / "metrics.json").read_text())
    assert res["finished"] and res["method"] == "entmin_pl" and res["label"] == "EntMin-PL+NS-WS"
    assert res["accuracy"] > res["source_only_accuracy"]
    assert main(["--plugin", plugin, "list"]) == 0  # loading the same file again is harmless
    assert "entmin_pl" in capsys.readouterr().out


def test_example_plugin_parameters_are_typed_and_checked_at_load(tmp_path, tiny_config):
    from sfda.plugins import load_plugin

    load_plugin(str(ROOT / "examples" / "my_method.py"))
    cfg = config_from_dict(tiny_config(tmp_path, tmp_path, **{"method.name": "entmin_pl", "method.pl_par": 1}))
    assert dict(cfg.method) == {
        "ent_par": 1.0,
        "pl_par": 1.0,
        "threshold": 0.0,
        "freeze_classifier": True,
        "name": "entmin_pl",
    }
    with pytest.raises(ConfigError, match=r"'method.threshold' must be in \[0, 1\], got 1.5 \(method 'entmin_pl'\)"):
        config_from_dict(tiny_config(tmp_path, tmp_path, **{"method.name": "entmin_pl", "method.threshold": 1.5}))


def test_plugins_from_the_environment_and_bad_plugins(tmp_path, monkeypatch, capsys):
    env = {**os.environ, "SFDA_PLUGINS": str(ROOT / "examples" / "my_method.py"), "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "sfda", "config", "-c", str(ROOT / "examples" / "my_method.yaml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "name: entmin_pl" in r.stdout and "pl_par: 0.3" in r.stdout
    monkeypatch.setenv("SFDA_PLUGINS", str(tmp_path / "missing.py"))
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: plugin") and "missing.py' not found" in err and err.strip().count("\n") == 0
    monkeypatch.delenv("SFDA_PLUGINS")
    assert main(["--plugin", "no_such_package.methods", "list"]) == 2
    assert "no module named 'no_such_package'" in capsys.readouterr().err


def test_plugin_specs_merge_environment_and_command_line(monkeypatch):
    from sfda.plugins import plugin_specs

    monkeypatch.setenv("SFDA_PLUGINS", os.pathsep.join(["a.py", "", "pkg.mod"]))
    assert plugin_specs(["b.py", "a.py"]) == ["a.py", "pkg.mod", "b.py"]
    monkeypatch.delenv("SFDA_PLUGINS")
    assert plugin_specs([]) == []
