"""Noisy-label losses: hand-computed values, numerical safety, CE limits, dtypes, the per-batch hooks, and
every registered loss as SHOT's pseudo-label loss (and as the source loss, with NS on top)."""

import dataclasses
import math
import re

import numpy as np
import pytest
import torch
import torch.nn as nn

from sfda.config import config_from_dict, load_config
from sfda.datatypes import Batch, StepInfo
from sfda.engine.runner import run_dir, run_stage
from sfda.errors import ConfigError
from sfda.losses import build_loss
from sfda.losses.functional import log1m_prob, project_to_scaled_simplex
from sfda.losses.information import im_loss
from sfda.losses.low import low_weights
from sfda.losses.ogc import P_MIN, clipping_ratio, fit_gmm_1d, solve_threshold
from sfda.models.network import build_model
from sfda.registry import LOSSES, METHODS

Z = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.0, 0.0], [-1.0, 0.3, 0.2]])
Y = torch.tensor([0, 2, 1])
K = 3
A_RCE = -math.log(1e-4)  # 9.2103


pytestmark = pytest.mark.usefixtures("one_thread")


def _p():
    """Softmax of Z with plain Python floats (independent of torch)."""
    out = []
    for row in Z.tolist():
        e = [math.exp(v) for v in row]
        out.append([v / sum(e) for v in e])
    return out


P = _p()
PY = [P[i][Y[i]] for i in range(3)]


def nce_ref(i):
    return math.log(PY[i]) / sum(math.log(p) for p in P[i])


def nfl_ref(i, g=0.5):
    fl = [(1 - p) ** g * -math.log(p) for p in P[i]]
    return fl[Y[i]] / sum(fl)


def row(fn):
    return torch.tensor([fn(i) for i in range(3)])


HAND = {
    "focal": ({"gamma": 2.0}, lambda i: -((1 - PY[i]) ** 2) * math.log(PY[i])),
    "gce": ({"q": 0.7}, lambda i: (1 - PY[i] ** 0.7) / 0.7),
    "truncated_gce": ({"q": 0.7, "k": 0.5}, lambda i: (1 - PY[i] ** 0.7) / 0.7),  # first visit: nothing pruned
    "sce": ({"alpha": 0.1, "beta": 1.0}, lambda i: 0.1 * -math.log(PY[i]) + A_RCE * (1 - PY[i])),
    "nce_rce": ({}, lambda i: nce_ref(i) + A_RCE * (1 - PY[i])),
    "nce_mae": ({}, lambda i: nce_ref(i) + (1 - PY[i])),
    "nfl_rce": ({}, lambda i: nfl_ref(i) + A_RCE * (1 - PY[i])),
    "nfl_mae": ({}, lambda i: nfl_ref(i) + (1 - PY[i])),
    "nce": ({}, nce_ref),
    "nfl": ({}, nfl_ref),
    "rce": ({}, lambda i: A_RCE * (1 - PY[i])),
    "mae": ({}, lambda i: 2 * (1 - PY[i])),
    "poly": ({"eps": 2.0}, lambda i: -math.log(PY[i]) + 2 * (1 - PY[i])),
    "agce": ({}, lambda i: (1.6**0.6 - (0.6 + PY[i]) ** 0.6) / 0.6),
    "aul": ({}, lambda i: ((5.5 - PY[i]) ** 3 - 4.5**3) / 3),
    "ael": ({}, lambda i: math.exp(-PY[i] / 2.5)),
    "nce_agce": ({}, lambda i: nce_ref(i) + 4 * (7**1.5 - (6 + PY[i]) ** 1.5) / 1.5),
    "nce_aul": ({}, lambda i: nce_ref(i) + 4 * ((6.3 - PY[i]) ** 1.5 - 5.3**1.5) / 1.5),
    "nce_ael": ({}, lambda i: nce_ref(i) + 4 * math.exp(-PY[i] / 5)),
    "ngl": (
        {},
        lambda i: (
            sum(math.exp(2.4092 - p * (1 + (k == Y[i]))) - math.cos(math.cos(math.sin(p))) for k, p in enumerate(P[i]))
            / K
        ),
    ),
}


def _anl_ce(i, a=5.0, b=5.0, pmin=1e-7):
    A = -math.log(pmin)
    t = [A + max(math.log(p), math.log(pmin)) for p in P[i]]
    return a * nce_ref(i) + b * (1 - t[Y[i]] / sum(t))


def _anl_fl(i, a=5.0, b=5.0, g=0.5, pmin=1e-7):
    fl = [-((1 - p) ** g) * max(math.log(p), math.log(pmin)) for p in P[i]]
    afl = -((1 - pmin) ** g) * math.log(pmin)
    return a * nfl_ref(i, g) + b * (1 - (afl - fl[Y[i]]) / (K * afl - sum(fl)))


def _ce_mae(i, alpha=0.01, beta=5.0, m=1e5):
    is_max = max(range(K), key=lambda k: P[i][k]) == Y[i]
    pt = (PY[i] + m * is_max) / (1 + m)
    return alpha * -math.log(max(pt, 1e-8)) + beta * 2 * (1 - PY[i])


HAND["anl_ce"] = ({}, _anl_ce)
HAND["anl_fl"] = ({}, _anl_fl)
HAND["ce_mae"] = ({}, _ce_mae)


@pytest.mark.parametrize("name", sorted(HAND))
def test_loss_against_hand_computed_values(name):
    params, fn = HAND[name]
    loss = build_loss({"name": name, **params}, K)
    got = loss(Z, Y, torch.arange(3))
    assert got.shape == (3,) and got.dtype == torch.float32
    assert torch.allclose(got, row(fn).float(), rtol=1e-5, atol=1e-5), (got, row(fn))


def test_every_registered_loss_has_a_hand_check_or_a_dedicated_test():
    dedicated = {"ce", "label_smoothing", "nlnl", "low", "ce_ogc"}  # tests/test_losses_basic.py and below
    dedicated |= {"expression", "learned"}  # tests/test_expression_loss.py, tests/test_learned_loss.py
    assert set(LOSSES.canonical()) <= set(HAND) | dedicated


def test_ce_mae_clamp_and_non_argmax_branch():
    # y is not the argmax: CE_eps = CE + log(1 + m); p_y tiny: clamped at -log(1e-8)
    z = torch.tensor([[3.0, 0.0], [12.0, 0.0]])
    y = torch.tensor([1, 1])
    loss = build_loss({"name": "ce_mae", "alpha": 1.0, "beta": 0.0}, 2)(z, y)
    ce = torch.nn.functional.cross_entropy(z, y, reduction="none")
    assert loss[0].item() == pytest.approx(ce[0].item() + math.log1p(1e5), rel=1e-5)
    assert loss[1].item() == pytest.approx(-math.log(1e-8), rel=1e-5)


# ---- numerical safety, dtypes ----------------------------------------------------------------------------


def _all_losses():
    return sorted(LOSSES.canonical())


@pytest.mark.parametrize("name", _all_losses())
def test_finite_values_and_gradients_at_saturated_probabilities(name):
    K5 = 5
    z = torch.full((4, K5), -30.0)
    z[0, 0] = z[1, 1] = z[2, 0] = z[3, 2] = 30.0  # p_y -> 1 for rows 0 and 2, p_y -> 0 for rows 1 and 3
    z.requires_grad_(True)
    y = torch.tensor([0, 0, 0, 0])
    loss = build_loss({"name": name}, K5)
    loss.update_labels(torch.tensor([0, 0, 0, 0, 1, 2, 3, 4]))
    for _ in range(3):  # stateful losses: first and later visits
        out = loss(z, y, torch.arange(4))
        assert torch.isfinite(out).all(), (name, out)
        (g,) = torch.autograd.grad(out.sum(), z)
        assert torch.isfinite(g).all(), (name, g)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", _all_losses())
def test_per_sample_float32_output_for_low_precision_logits(name, dtype):
    torch.manual_seed(0)
    z = (torch.randn(6, 4) * 3).to(dtype).requires_grad_(True)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    loss = build_loss({"name": name}, 4)
    loss.update_labels(y)
    out = loss(z, y, torch.arange(6))
    assert out.shape == (6,) and out.dtype == torch.float32 and torch.isfinite(out).all()
    out.mean().backward()
    assert z.grad is not None and z.grad.dtype == dtype


def test_log1m_prob_is_exact_where_one_minus_p_underflows():
    z = torch.tensor([[30.0, -30.0, -30.0]])
    assert 1 - torch.softmax(z, 1)[0, 0].item() == 0.0  # the naive form loses it
    assert log1m_prob(z, torch.tensor([0])).item() == pytest.approx(-60 + math.log(2), rel=1e-6)
    zz = torch.randn(5, 4)
    cls = torch.randint(0, 4, (5, 3))
    assert torch.allclose(log1m_prob(zz, cls), torch.log1p(-torch.softmax(zz, 1).gather(1, cls)), atol=1e-6)


# ---- limits -------------------------------------------------------------------------------------------------


def test_losses_equal_ce_in_their_limits():
    torch.manual_seed(1)
    z = torch.randn(8, 5) * 2
    y = torch.randint(0, 5, (8,))
    ce = torch.nn.functional.cross_entropy(z, y, reduction="none")
    assert torch.equal(build_loss({"name": "focal", "gamma": 0.0}, 5)(z, y), ce)
    assert torch.allclose(build_loss({"name": "focal", "gamma": 1e-9}, 5)(z, y), ce, atol=1e-6)
    assert torch.allclose(build_loss({"name": "gce", "q": 1e-6}, 5)(z, y), ce, rtol=1e-4, atol=1e-5)
    assert torch.allclose(build_loss({"name": "poly", "eps": 0.0}, 5)(z, y), ce)
    assert torch.allclose(build_loss({"name": "label_smoothing", "eps": 0.0}, 5)(z, y), ce)
    assert torch.allclose(build_loss({"name": "sce", "alpha": 1.0, "beta": 0.0}, 5)(z, y), ce)
    assert torch.allclose(build_loss({"name": "low", "lamb": 1e6}, 5)(z, y), ce, atol=1e-5)  # weights -> 1
    assert torch.allclose(build_loss({"name": "ce_ogc"}, 5)(z, y), ce, atol=1e-6)  # p* = 1e-7 at start
    # GCE at q = 1 is 1 - p_y (MAE / 2)
    assert torch.allclose(
        build_loss({"name": "gce", "q": 1.0}, 5)(z, y), build_loss({"name": "mae", "scale": 1.0}, 5)(z, y), atol=1e-6
    )


def test_focal_true_gradient_and_detached_variant():
    z = torch.tensor([[1.0, 0.0, -0.5]], requires_grad=True)
    y = torch.tensor([0])
    p = torch.softmax(z, 1)[0, 0]
    ref = -((1 - p) ** 0.5) * torch.log(p)
    (g_ref,) = torch.autograd.grad(ref, z)
    (g,) = torch.autograd.grad(build_loss({"name": "focal", "gamma": 0.5}, 3)(z, y).sum(), z)
    assert torch.allclose(g, g_ref, atol=1e-6)
    (g_det,) = torch.autograd.grad(build_loss({"name": "focal", "gamma": 0.5, "detach_factor": True}, 3)(z, y).sum(), z)
    (g_ce,) = torch.autograd.grad(-torch.log_softmax(z, 1)[0, 0], z)
    assert torch.allclose(g_det, (1 - p.detach()) ** 0.5 * g_ce, atol=1e-6)
    alpha = build_loss({"name": "focal", "gamma": 0.0, "alpha": [2.0, 1.0, 1.0]}, 3)(z.detach(), y)
    assert alpha.item() == pytest.approx(-2 * math.log(p.item()), rel=1e-6)


# ---- user mistakes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,key,message",
    [
        ({"name": "gce", "q": 0.0}, "q", "must be in (0, 1], got 0.0"),
        ({"name": "gce", "q": 1.5}, "q", "must be in (0, 1], got 1.5"),
        ({"name": "truncated_gce", "k": 1.0}, "k", "must be in [0, 1), got 1.0"),
        ({"name": "focal", "gamma": -1.0}, "gamma", "must be in [0, inf], got -1.0"),
        ({"name": "focal", "alpha": [1.0, -1.0, 1.0, 1.0]}, "alpha", "item 1 must be in [0, inf], got -1.0"),
        ({"name": "poly", "eps": -2.0}, "eps", "must be in [-1, inf], got -2.0"),
        ({"name": "aul", "a": 1.0}, "a", "must be in (1, inf], got 1.0"),
        ({"name": "nlnl", "ln_neg": 0}, "ln_neg", "must be in [1, inf], got 0"),
        ({"name": "nlnl", "selnl_after": 5, "selpl_after": 2}, "selpl_after", "must be >= selnl_after (5), got 2"),
        ({"name": "low", "lamb": 0.0}, "lamb", "must be in (0, inf], got 0.0"),
        ({"name": "low", "grad_scale": "x"}, "grad_scale", "must be one of batch, sample, got 'x'"),
        ({"name": "ce_ogc", "base": "mse"}, "base", "must be one of ce, fl, gce, got 'mse'"),
        ({"name": "ngl", "class_reduction": "max"}, "class_reduction", "must be one of mean, sum, got 'max'"),
        ({"name": "sce", "A": 1.0}, "A", "must be in [-inf, 0), got 1.0"),
    ],
)
def test_invalid_parameters_stop_the_config_load_naming_the_key_value_and_range(spec, key, message):
    want = f"'method.pl_loss.{key}' {message} (loss '{spec['name']}')"
    with pytest.raises(ConfigError) as err:
        config_from_dict({"method": {"name": "shot", "pl_loss": spec}})
    assert str(err.value) == f"config: {want}"
    # the same declaration checks a source loss and a loss built in code (without the loader)
    with pytest.raises(ConfigError, match=re.escape(f"'method.loss.{key}' {message} (loss '{spec['name']}')")):
        config_from_dict({"method": {"name": "source", "loss": spec}})
    with pytest.raises(ConfigError, match=re.escape(f"'method.pl_loss.{key}' {message}")):
        build_loss(spec, 4)


def test_a_bad_loss_value_or_key_is_reported_with_where_it_was_set(tmp_path):
    cfg = tmp_path / "gce.yaml"
    cfg.write_text("method:\n  name: shot\n  pl_loss:\n    name: gce\n    q: 0\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert str(err.value) == f"{cfg}:5: 'method.pl_loss.q' must be in (0, 1], got 0.0 (loss 'gce')"
    with pytest.raises(ConfigError) as err:
        load_config("digits/shot/mnist5k_uci", ["method.pl_loss.name=gce", "method.pl_loss.q=0"])
    assert str(err.value) == "command line: 'method.pl_loss.q' must be in (0, 1], got 0.0 (loss 'gce')"
    with pytest.raises(ConfigError) as err:
        load_config("digits/shot/mnist5k_uci", ["method.pl_loss.name=gce", "method.pl_loss.qq=1"])
    assert str(err.value) == "command line: unknown key 'method.pl_loss.qq' (did you mean 'method.pl_loss.q'?)"


def test_focal_alpha_needs_one_weight_per_class_when_the_loss_is_built():
    # the number of classes is known only when the loss is built: one line naming the key and the count
    with pytest.raises(ConfigError, match=r"^loss 'focal': 'alpha' must list one weight per class \(4\), got 1;"):
        build_loss({"name": "focal", "alpha": [1.0]}, 4)
    with pytest.raises(ConfigError, match="'method.pl_loss.alpha' must be a list"):
        config_from_dict({"method": {"name": "shot", "pl_loss": {"name": "focal", "alpha": 1.0}}})


def test_losses_built_in_code_take_keyword_parameters_checked_as_the_config_does():
    from sfda.losses.generalized_ce import GeneralizedCrossEntropy

    assert GeneralizedCrossEntropy(4, q=0.5).hparams.q == 0.5
    assert GeneralizedCrossEntropy(4).hparams.q == 0.7
    with pytest.raises(ConfigError, match=re.escape("'method.pl_loss.q' must be in (0, 1], got 0.0")):
        GeneralizedCrossEntropy(4, q=0.0)
    with pytest.raises(ConfigError, match="unknown parameter 'method.pl_loss.qq'"):
        GeneralizedCrossEntropy(4, qq=0.5)


def test_every_loss_declares_typed_parameters_and_no_legacy_defaults():
    from sfda.losses.base import LossParams

    for name, cls in LOSSES.canonical().items():
        # its own Params, or none at all (the empty base: no keys accepted)
        assert cls.Params is LossParams or ("Params" in vars(cls) and issubclass(cls.Params, LossParams)), name
        assert not hasattr(cls, "defaults") and not hasattr(cls, "param_defaults"), name
        for f in dataclasses.fields(cls.Params):
            assert f.metadata.get("help"), (name, f.name)  # every parameter has a one-line help for `sfda list`


def test_unknown_loss_keys_are_rejected_by_the_config():
    with pytest.raises(ConfigError, match="unknown key 'method.pl_loss.qq'"):
        config_from_dict({"method": {"name": "shot", "pl_loss": {"name": "gce", "qq": 0.5}}})
    with pytest.raises(ConfigError, match="'method.pl_loss.q' must be a number"):
        config_from_dict({"method": {"name": "shot", "pl_loss": {"name": "gce", "q": "high"}}})


# ---- LOW --------------------------------------------------------------------------------------------------


def test_low_weights_closed_form_and_qp_optimality():
    torch.manual_seed(2)
    z = torch.randn(16, 5) * 2
    y = torch.randint(0, 5, (16,))
    p = torch.softmax(z, 1)
    g = (p - torch.nn.functional.one_hot(y, 5)).norm(dim=1)
    # per-sample g, lambda 1: no weight hits 0 here -> w = 1 + (g^2 - mean g^2) / (2 lambda)
    w = low_weights(z, y, 1.0, "sample")
    assert torch.allclose(w, 1 + (g**2 - (g**2).mean()) / 2, atol=1e-6)
    # batch-scaled g (reference HEAD: g / N) with lambda 0.1: close to uniform
    wb = low_weights(z, y, 0.1, "batch")
    gb = g / 16
    assert torch.allclose(wb, 1 + (gb**2 - (gb**2).mean()) / 0.2, atol=1e-6)
    assert (wb - 1).abs().max() < 0.05 and wb.sum().item() == pytest.approx(16, abs=1e-4)
    # lambda small: some weights are exactly 0; KKT conditions of the QP hold
    lam = 0.05
    ws = low_weights(z, y, lam, "sample")
    v = (g**2 + lam) / (2 * lam)
    assert (ws >= 0).all() and ws.sum().item() == pytest.approx(16, rel=1e-5) and (ws == 0).any()
    theta = (v - ws)[ws > 0]
    assert torch.allclose(theta, theta[0].expand_as(theta), atol=1e-4)  # w_i = v_i - theta where positive
    assert (v[ws == 0] <= theta[0] + 1e-5).all()  # and v_i <= theta where 0
    # the loss is w_i * CE_i with w detached
    zr = z.clone().requires_grad_(True)
    out = build_loss({"name": "low", "lamb": lam, "grad_scale": "sample"}, 5)(zr, y)
    ce = torch.nn.functional.cross_entropy(z, y, reduction="none")
    assert torch.allclose(out, ws * ce, atol=1e-5)
    (gz,) = torch.autograd.grad(out.sum(), zr)
    (gref,) = torch.autograd.grad((ws * torch.nn.functional.cross_entropy(zr, y, reduction="none")).sum(), zr)
    assert torch.allclose(gz, gref, atol=1e-6)


def test_simplex_projection_matches_a_brute_force_solution():
    v = torch.tensor([3.0, 0.2, 1.0, -1.0])
    w = project_to_scaled_simplex(v, 2.0)
    # theta solves sum(max(v - theta, 0)) = 2: v - theta for {3, 1} -> 4 - 2 theta = 2 -> theta = 1
    assert torch.allclose(w, torch.tensor([2.0, 0.0, 0.0, 0.0]))
    w = project_to_scaled_simplex(torch.tensor([1.0, 1.0, 1.0]), 3.0)
    assert torch.allclose(w, torch.ones(3))


# ---- NLNL ----------------------------------------------------------------------------------------------------


def test_nlnl_complementary_labels_are_uniform_over_the_other_classes():
    torch.manual_seed(0)
    loss = build_loss({"name": "nlnl", "ln_neg": 3}, 4)
    y = torch.full((20000,), 2)
    ybar = loss.complementary(y)
    assert ybar.shape == (20000, 3) and not (ybar == 2).any()
    freq = torch.bincount(ybar.flatten(), minlength=4).float() / ybar.numel()
    assert torch.allclose(freq[[0, 1, 3]], torch.full((3,), 1 / 3), atol=0.01)


def test_nlnl_value_with_fixed_complementary_labels_and_class_weights():
    loss = build_loss({"name": "nlnl", "ln_neg": 2}, K)
    loss.update_labels(torch.tensor([0, 0, 0, 1, 2, 2]))  # counts 3, 1, 2 -> weights 1, 3, 1.5
    assert torch.allclose(loss.weights, torch.tensor([1.0, 3.0, 1.5]))
    ybar = torch.tensor([[1, 2], [0, 0], [0, 2]])
    term = loss.nl_term(Z, Y, ybar)
    ref = [-sum(math.log(1 - P[i][j]) for j in ybar[i].tolist()) for i in range(3)]
    assert torch.allclose(term, torch.tensor(ref), atol=1e-6)
    # the per-sample loss is w_y times the sum over ln_neg draws (draws are random: check with K = 2)
    l2 = build_loss({"name": "nlnl"}, 2)
    l2.update_labels(torch.tensor([0, 1, 1, 1]))  # weights 3, 1
    z = torch.tensor([[0.3, -0.2], [1.0, 0.5]])
    out = l2(z, torch.tensor([0, 1]))
    p = torch.softmax(z, 1)
    assert torch.allclose(out, torch.stack([-3 * torch.log(1 - p[0, 1]), -torch.log(1 - p[1, 0])]), atol=1e-6)
    # the clamp: each term at most -log(min_prob)
    sat = l2(torch.tensor([[-30.0, 30.0]]), torch.tensor([0]))
    assert sat.item() == pytest.approx(-3 * math.log(1e-5), rel=1e-5)


def test_nlnl_stages_follow_each_samples_visits_and_history():
    torch.manual_seed(0)
    loss = build_loss({"name": "nlnl", "selnl_after": 1, "selpl_after": 2, "class_weights": False}, 2)
    loss.update_labels(torch.tensor([0, 0]))
    # sample 0: confident in its label; sample 1: its label has p = 0.27 (< 1/K and < cut)
    z = torch.tensor([[2.0, -1.0], [-0.5, 0.5]])
    y = torch.tensor([0, 0])
    idx = torch.tensor([0, 1])
    first = loss(z, y, idx)  # NL for both
    assert (first > 0).all()
    second = loss(z, y, idx)  # SelNL: sample 1 dropped
    assert second[0] > 0 and second[1] == 0
    third = loss(z, y, idx)  # SelPL: CE on sample 0, sample 1 dropped
    ce = torch.nn.functional.cross_entropy(z, y, reduction="none")
    assert third[0].item() == pytest.approx(ce[0].item(), rel=1e-6) and third[1] == 0
    assert loss.stage_counts() == {"nl": 0, "selnl": 0, "selpl": 2}
    # after a refresh that relabels sample 1 with its confident class, the history is read at the new label
    loss.update_labels(torch.tensor([0, 1]))
    ce1 = torch.nn.functional.cross_entropy(z[1:], torch.tensor([1])).item()
    assert loss(z, torch.tensor([0, 1]), idx)[1].item() == pytest.approx(ce1, rel=1e-6)


# ---- truncated GCE -------------------------------------------------------------------------------------------


def test_truncated_gce_mask_prunes_refreshes_and_keeps_gradients_of_kept_samples():
    loss = build_loss({"name": "truncated_gce", "q": 0.7, "k": 0.5}, 2)
    loss.update_labels(torch.tensor([0, 0, 0]))
    z = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 0, 0])
    idx = torch.arange(3)
    gce = build_loss({"name": "gce", "q": 0.7}, 2)
    lqk = (1 - 0.5**0.7) / 0.7
    assert torch.allclose(loss(z, y, idx), gce(z, y))  # first visit: nothing pruned
    out = loss(z, y, idx)  # sample 1 has p_y = 0.12 <= k: pruned
    assert torch.allclose(out[[0, 2]], gce(z, y)[[0, 2]]) and out[1].item() == pytest.approx(lqk)
    (g,) = torch.autograd.grad(out.sum(), z)
    assert torch.all(g[1] == 0) and torch.all(g[0] != 0)
    assert loss.kept_fraction() == pytest.approx(2 / 3)
    # a pseudo-label refresh: sample 1 relabelled to its confident class is kept again at its next visit
    loss.update_labels(torch.tensor([0, 1, 0]))
    y2 = torch.tensor([0, 1, 0])
    assert torch.allclose(loss(z, y2, idx), gce(z, y2))


def test_truncated_gce_prune_schedule():
    loss = build_loss({"name": "truncated_gce", "start_prune": 2, "prune_every": 2}, 2)
    good, bad = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    y, i = torch.tensor([0]), torch.tensor([0])
    lqk = (1 - 0.5**0.7) / 0.7
    assert loss(bad, y, i).item() != pytest.approx(lqk)  # visit 0: no record
    assert loss(bad, y, i).item() != pytest.approx(lqk)  # visit 1: before start_prune
    assert loss(good, y, i).item() == pytest.approx(lqk)  # visit 2: pruned from visit 1's output
    assert loss(good, y, i).item() == pytest.approx(lqk)  # visit 3: not a pruning visit, mask kept
    assert loss(bad, y, i).item() != pytest.approx(lqk)  # visit 4: recomputed from visit 3 (good): kept


# ---- OGC ------------------------------------------------------------------------------------------------------


def test_ogc_clipped_branch_by_hand():
    loss = build_loss({"name": "ce_ogc"}, K)
    loss.p_star = 0.3
    out = loss(Z, Y)
    for i in range(3):
        want = 1 - PY[i] / 0.3 - math.log(0.3) if PY[i] <= 0.3 else -math.log(PY[i])
        assert out[i].item() == pytest.approx(want, rel=1e-5)
    # continuous at p* for CE; the clipped branch has |d l / d p_y| = tau
    z = torch.tensor([[math.log(0.3 / 0.7), 0.0]], requires_grad=True)  # p_0 = 0.3
    loss2 = build_loss({"name": "ce_ogc"}, 2)
    loss2.p_star = 0.3 + 1e-6
    assert loss2(z, torch.tensor([0])).item() == pytest.approx(-math.log(0.3), rel=1e-4)


def test_ogc_threshold_state_updates_from_the_queue():
    torch.manual_seed(0)
    loss = build_loss({"name": "ce_ogc", "queue_size": 256, "interval": 4, "lr": 0.01}, 4)
    clean = torch.tensor([[6.0, 0.0, 0.0, 0.0]]).repeat(24, 1)  # p_y ~ 0.99
    noisy = torch.tensor([[0.0, 3.0, 0.0, 0.0]]).repeat(8, 1)  # p_y ~ 0.04
    z = torch.cat([clean, noisy]) + 0.3 * torch.randn(32, 4)
    y = torch.zeros(32, dtype=torch.long)
    for step in range(8):
        loss(z, y)
        if step < 7:
            assert loss.p_star == P_MIN and loss.updates == 0  # queue not full yet (8 x 32 = 256)
    assert loss.updates == 1 and P_MIN < loss.p_star < 1 - 1e-7
    # the solved threshold meets the target ratio 1 + lr * eps (within the bisection's resolution)
    mu, var, _ = fit_gmm_1d(loss._queue)
    grid = np.linspace(-math.log(1 - 1e-7), -math.log(1e-7), 1000)
    r = clipping_ratio(loss.p_star, grid, (mu[0], var[0]), (mu[1], var[1]), "ce", 0.5, 0.7)
    assert r == pytest.approx(loss.target_ratio, rel=0.05)
    assert loss.target_ratio == pytest.approx(1.2)
    # clipping now applies to the noisy samples: their loss is linear in p_y with slope tau
    out = loss(z, y)
    p = torch.softmax(z, 1)[:, 0]
    below = p <= loss.p_star
    assert below[24:].all() and not below[:24].any()
    assert torch.allclose(out[below], 1 - loss.tau * p[below] - math.log(loss.p_star), atol=1e-4)


def test_ogc_threshold_extremes():
    h_same = np.full(100, 0.5)
    assert solve_threshold(h_same, 1.2) == P_MIN  # one population: no clipping needed
    h_far = np.concatenate([np.full(50, 0.01), np.full(50, 15.0)])
    assert solve_threshold(h_far, 0.9) == pytest.approx(1 - 1e-7)  # unreachable target: maximal clipping


# ---- ANL penalty: added once per batch by the method, not per sample ------------------------------------------


def test_anl_penalty_is_l1_of_trainable_parameters_and_added_once_per_batch(two_domains, tmp_path, tiny_config):
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    net[1].weight.requires_grad_(False)
    loss = build_loss({"name": "anl_ce", "delta": 0.01}, 2)
    want = 0.01 * sum(p.abs().sum() for p in net.parameters() if p.requires_grad)
    assert loss.penalty(net).item() == pytest.approx(want.item(), rel=1e-6)
    assert build_loss({"name": "anl_ce", "delta": 0.0}, 2).penalty(net) == 0.0
    assert build_loss({"name": "gce"}, 2).penalty(net) == 0.0

    cfg = config_from_dict(
        tiny_config(
            two_domains, tmp_path, **{"method.name": "shot", "method.pl_loss": {"name": "anl_ce", "delta": 1e-3}}
        )
    )
    model = build_model(cfg)
    method = METHODS.get("shot")(model, 4, dict(cfg.method), cfg)
    method.setup(None, "cpu")
    method.pseudo = torch.tensor([0, 1, 2, 3] * 4)
    x = torch.randn(8, 3, 16, 16)
    idx = torch.arange(8)
    out = method.training_step(Batch(x, torch.zeros(8, dtype=torch.long), idx), StepInfo(0, 1, 0, 1))
    im = im_loss(torch.softmax(out.logits.float(), 1))
    pen = method.criterion.penalty(model)
    assert (out.reduced_loss - im).item() == pytest.approx(pen.item(), rel=1e-5)  # the batch term, once
    per = method.criterion(out.logits, method.pseudo[idx], idx)
    assert torch.allclose(out.per_sample, method.hparams.cls_par * per)  # no penalty in the per-sample term


# ---- every registered loss as SHOT's pseudo-label loss (1 epoch) -----------------------------------------------


@pytest.fixture(scope="module")
def small_set(tmp_path_factory, tiny_config, make_two_domain_set):
    root = make_two_domain_set(tmp_path_factory.mktemp("small"), per_class=6, seed=3)
    out = tmp_path_factory.mktemp("runs")
    src = config_from_dict(
        tiny_config(root, out, **{"name": "src", "method.name": "source", "optim.epochs": 2, "data.batch_size": 8})
    )
    run_stage(src)
    return root, out, run_dir(src)


@pytest.mark.parametrize("name", _all_losses())
def test_every_loss_runs_as_shots_pseudo_label_loss(small_set, name, tiny_config):
    root, out, src = small_set
    m = run_stage(
        config_from_dict(
            tiny_config(
                root,
                out,
                **{
                    "name": f"pl/{name}",
                    "method.name": "shot",
                    "source.checkpoint": str(src),
                    "optim.epochs": 1,
                    "data.batch_size": 8,
                    "method.pl_loss": {"name": name},
                },
            )
        )
    )
    assert m["finished"] and math.isfinite(m["history"][1]["loss_pl"])
    assert m["label"] == ("SHOT" if name in ("ce", "label_smoothing") else f"SHOT[{name}]")


def test_losses_compose_with_ns_and_as_the_source_loss(small_set, tiny_config):
    root, out, src = small_set
    a = run_stage(
        config_from_dict(
            tiny_config(
                root,
                out,
                **{
                    "name": "gce_ns",
                    "method.name": "shot",
                    "source.checkpoint": str(src),
                    "optim.epochs": 1,
                    "data.batch_size": 8,
                    "method.pl_loss": {"name": "gce", "q": 0.7},
                    "weighting": {"name": "ns", "m": 4, "sigma": 0.6},
                },
            )
        )
    )
    assert a["label"] == "SHOT[gce]+NS-WS" and "w_weight_mean" in a["history"][1]
    b = run_stage(
        config_from_dict(
            tiny_config(
                root,
                out,
                **{
                    "name": "src_nlnl_ns",
                    "method.name": "source",
                    "optim.epochs": 1,
                    "data.batch_size": 8,
                    "method.loss": {"name": "nlnl"},
                    "weighting": {"name": "ns", "m": 2, "sigma": 2.5, "rho": -1.0},
                },
            )
        )
    )
    assert b["finished"] and b["label"] == "Source[nlnl]+NS-LF" and math.isfinite(b["history"][1]["loss_cls"])


# ---- stateful losses keep their state in state_dict (exact resume when a method saves it) ---------------------


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "truncated_gce"},
        {"name": "nlnl", "selnl_after": 1, "selpl_after": 2},
        {"name": "ce_ogc", "queue_size": 64, "interval": 2},
    ],
)
def test_stateful_losses_round_trip_through_state_dict(spec):
    torch.manual_seed(0)
    z = torch.randn(32, 4) * 2
    y = torch.randint(0, 4, (32,))
    idx = torch.arange(32)
    a = build_loss(spec, 4)
    a.update_labels(y)
    for _ in range(3):
        a(z, y, idx)
    b = build_loss(spec, 4)
    b.load_state_dict(a.state_dict())
    torch.manual_seed(1)
    out_a = a(z, y, idx)
    torch.manual_seed(1)
    out_b = b(z, y, idx)
    assert torch.equal(out_a, out_b)
    fresh = build_loss(spec, 4)
    fresh.update_labels(y)
    torch.manual_seed(1)
    assert not torch.equal(fresh(z, y, idx), out_a)  # the state matters
