"""The EDL-style learned loss: monotone and finite in p_y for any K, the evolution strategy (fitness rises,
seeded), the saved file (round trip, settings, one-line errors), and its use from configs."""

import math

import numpy as np
import pytest
import torch

from sfda.cli import main
from sfda.config import load_config
from sfda.errors import ConfigError
from sfda.losses import build_loss
from sfda.losses.learned import (
    LearnedLoss,
    loss_features,
    loss_values,
    num_weights,
    raw_values,
    read_loss_file,
    uniform_slope,
)
from sfda.losses.learned_pairs import KINDS, REGIMES, sample_pairs, scores
from sfda.losses.learned_pretrain import LogisticMutation, PretrainParams, consistency, pretrain
from sfda.params import build_params

TINY = {"generations": 6, "population": 8, "parents": 2, "pairs": 512, "monitor_pairs": 1024, "hidden": 4}


@pytest.fixture(scope="module")
def loss_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("learned") / "edl.pt"
    assert (
        main(["loss", "pretrain", "--out", str(path), "--progress", "none", *[f"{k}={v}" for k, v in TINY.items()]])
        == 0
    )
    return path


def _grid_logits(num_classes, p_y, seed=0, dtype=torch.float32):
    """Logits with p_y on a grid and the other classes in fixed random proportions."""
    g = torch.Generator().manual_seed(seed)
    shape = torch.softmax(torch.randn(num_classes - 1, generator=g) * 2, dim=0).double()
    p_y = p_y.double()
    probs = torch.cat([p_y[:, None], (1 - p_y)[:, None] * shape[None, :]], dim=1)
    return probs.log().to(dtype), torch.zeros(len(p_y), dtype=torch.long)


@pytest.mark.parametrize("num_classes", [2, 10, 65])
def test_finite_and_decreasing_in_p_y_for_any_weights(num_classes, loss_file):
    p_y = torch.sigmoid(torch.linspace(-14, 14, 113, dtype=torch.float64))  # 8e-7 .. 1 - 8e-7
    weights = [LearnedLoss(num_classes, path=str(loss_file)).theta]
    weights += [torch.randn(1, num_weights(4), generator=torch.Generator().manual_seed(s)) * 3 for s in range(5)]
    for theta in weights:
        exact = loss_values(theta.double(), loss_features(*_grid_logits(num_classes, p_y, dtype=torch.float64)), 4)[0]
        assert torch.isfinite(exact).all() and (exact[1:] < exact[:-1]).all()  # the construction: strictly
        values = loss_values(theta, loss_features(*_grid_logits(num_classes, p_y)), 4)[0]  # as used, float32
        steps = values[1:] - values[:-1]
        assert torch.isfinite(values).all() and (steps <= 1e-5 * (1 + values[1:].abs())).all()
        assert (steps[p_y[1:] <= 0.99] < 0).all()
    extreme = torch.tensor(
        [[80.0] + [-80.0] * (num_classes - 1), [-80.0] + [80.0] * (num_classes - 1)], requires_grad=True
    )
    value = LearnedLoss(num_classes, path=str(loss_file))(extreme, torch.tensor([0, 0]))
    (grad,) = torch.autograd.grad(value.sum(), extreme)
    assert torch.isfinite(value).all() and torch.isfinite(grad).all() and value[1] > value[0]


def test_gradient_at_the_uniform_prediction_equals_cross_entropys(loss_file):
    for k in (2, 10, 65):
        logits = torch.zeros(1, k, requires_grad=True)
        loss = LearnedLoss(k, path=str(loss_file))(logits, torch.tensor([1]))
        (grad,) = torch.autograd.grad(loss.sum(), logits)
        ce_logits = torch.zeros(1, k, requires_grad=True)
        (ce_grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(ce_logits, torch.tensor([1])), ce_logits)
        assert grad[0, 1].item() == pytest.approx(ce_grad[0, 1].item(), rel=1e-4)


def test_uniform_slope_is_the_derivative_along_u1():
    theta = torch.randn(3, num_weights(5), dtype=torch.float64)
    for k in (2.0, 7.0):
        u1 = torch.tensor(math.log(k), dtype=torch.float64, requires_grad=True)
        c = [1.0, 0.0] if k == 2 else [1 / (k - 1), 1.0]
        feats = torch.stack(
            [
                u1,
                1 - torch.exp(-u1),
                *[torch.tensor(v, dtype=torch.float64) for v in c],
                torch.tensor(math.log(k) / math.log(100), dtype=torch.float64),
            ]
        )[None]
        value = raw_values(theta, feats, 5)
        numeric = torch.stack([torch.autograd.grad(value[i, 0], u1, retain_graph=True)[0] for i in range(3)])
        assert torch.allclose(uniform_slope(theta, torch.tensor([k], dtype=torch.float64), 5)[:, 0], numeric)


def test_pairs_are_ordered_by_both_scoring_rules():
    blocks = sample_pairs(np.random.default_rng(0), 3000, 2, 80)
    assert {b.num_classes for b in blocks} <= set(range(2, 81)) and sum(len(b.targets) for b in blocks) > 2500
    for b in blocks:
        pb, pw = torch.softmax(b.better.double(), 1).numpy(), torch.softmax(b.worse.double(), 1).numpy()
        ce_b, br_b = scores(pb, b.targets.numpy())
        ce_w, br_w = scores(pw, b.targets.numpy())
        assert (ce_w >= ce_b - 1e-5).all() and (br_w >= br_b - 1e-5).all()
    regimes = torch.cat([b.regime for b in blocks])
    kinds = torch.cat([b.kind for b in blocks])
    assert set(regimes.tolist()) == set(range(len(REGIMES))) and set(kinds.tolist()) == set(range(len(KINDS)))


def test_consistency_counts_ties_as_half_and_averages_regimes():
    better = torch.tensor([[1.0, 1.0, 2.0, 5.0]])
    worse = torch.tensor([[2.0, 1.0, 1.0, 6.0]])
    regime = torch.tensor([0, 0, 1, 1])
    assert consistency(better, worse, regime).item() == pytest.approx(((1 + 0.5) / 2 + (0 + 1) / 2) / 2)


def test_cross_entropy_ties_on_sharpened_pairs():
    blocks = sample_pairs(np.random.default_rng(1), 2000)
    ce = torch.nn.functional.cross_entropy
    better = torch.cat([ce(b.better, b.targets, reduction="none") for b in blocks])[None]
    worse = torch.cat([ce(b.worse, b.targets, reduction="none") for b in blocks])[None]
    kind = torch.cat([b.kind for b in blocks])
    regime = torch.cat([b.regime for b in blocks])
    assert consistency(better[:, kind == 1], worse[:, kind == 1], regime[kind == 1]).item() == pytest.approx(0.5)
    assert consistency(better[:, kind == 0], worse[:, kind == 0], regime[kind == 0]).item() == 1.0


def test_logistic_mutation_is_chaotic_unit_variance_and_seeded():
    draws = [LogisticMutation(np.random.default_rng(3), (4, 50), 3.99) for _ in range(2)]
    a = np.stack([draws[0].draw() for _ in range(400)])
    b = np.stack([draws[1].draw() for _ in range(400)])
    assert np.array_equal(a, b) and np.abs(a).max() < 4
    assert abs(a.mean()) < 0.05 and 0.9 < a.var() < 1.1
    assert len(np.unique(a[:, 0, 0].round(8))) == 400  # no collapse onto a cycle


def test_fitness_rises_over_a_few_generations_on_a_tiny_budget():
    for mutation in ("chaotic", "gaussian"):
        record = pretrain(build_params(PretrainParams, {**TINY, "mutation": mutation, "init_scale": 3.0}))
        monitor = record["history"]["monitor"]
        assert len(monitor) == TINY["generations"]
        assert record["monitor_fitness"] > monitor[0] and max(monitor[1:]) > monitor[0], mutation


def test_same_seed_same_network_and_the_mutation_matters():
    hp = build_params(PretrainParams, {**TINY, "generations": 3})
    first, second = pretrain(hp), pretrain(hp)
    assert torch.equal(first["theta"], second["theta"]) and first["history"] == second["history"]
    assert not torch.equal(pretrain(hp.replace(seed=1))["theta"], first["theta"])
    assert not torch.equal(pretrain(hp.replace(mutation="gaussian"))["theta"], first["theta"])


def test_saved_file_round_trips_with_its_settings(loss_file):
    record = read_loss_file(str(loss_file))
    assert record["settings"] == {**PretrainParams().to_dict(), **TINY}
    assert record["command"].startswith(f"sfda loss pretrain --out {loss_file}") and "hidden=4" in record["command"]
    assert record["kind"].startswith("EDL-style") and len(record["history"]["monitor"]) == TINY["generations"]
    loss = LearnedLoss(10, path=str(loss_file))
    logits, targets = torch.randn(16, 10), torch.randint(0, 10, (16,))
    expected = loss_values(record["theta"], loss_features(logits, targets), 4)[0]
    assert torch.allclose(loss(logits, targets), expected, rtol=1e-6)
    assert list(loss.parameters()) == [] and set(loss.state_dict()) == {"theta", "scale"}  # frozen


def test_missing_or_corrupt_file_is_one_line_naming_it_and_the_command(tmp_path, loss_file):
    missing = tmp_path / "nope.pt"
    with pytest.raises(ConfigError) as e:
        load_config("configs/digits/shot/mnist5k_uci.yaml", [f"method.pl_loss={{name: learned, path: {missing}}}"])
    assert "\n" not in str(e.value) and str(missing) in str(e.value)
    assert f"sfda loss pretrain --out {missing}" in str(e.value) and "'method.pl_loss.path'" in str(e.value)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file")
    for bad in (corrupt, tmp_path / "other.pt"):
        if bad.name == "other.pt":
            torch.save({"format": "something else"}, bad)
        with pytest.raises(
            ConfigError, match=f"'{bad}' is not a learned loss file .* `sfda loss pretrain --out {bad}`"
        ):
            LearnedLoss(10, path=str(bad))
    with pytest.raises(ConfigError, match="'method.loss.path' must name a file"):
        load_config("configs/digits/source/mnist5k.yaml", ['method.loss={name: learned, path: ""}'])


def test_the_shipped_file_is_the_default_and_matches_its_command():
    cfg = load_config("configs/digits/shot/mnist5k_uci.yaml", ["method.pl_loss={name: learned}"])
    record = read_loss_file(cfg.method.pl_loss.path)
    assert cfg.method.pl_loss.path == "configs/losses/edl_style.pt"
    assert record["command"] == "sfda loss pretrain --out configs/losses/edl_style.pt"
    assert record["settings"] == PretrainParams().to_dict()


def test_usable_as_pseudo_label_and_supervised_loss(loss_file):
    for config, key in (
        ("configs/digits/shot/mnist5k_uci.yaml", "pl_loss"),
        ("configs/digits/source/mnist5k.yaml", "loss"),
    ):
        cfg = load_config(config, [f"method.{key}={{name: learned, path: {loss_file}}}"])
        loss = build_loss(cfg.method[key], 10)
        logits = torch.randn(8, 10, requires_grad=True)
        loss(logits, torch.arange(8)).mean().backward()
        assert isinstance(loss, LearnedLoss) and torch.isfinite(logits.grad).all()


def test_bad_settings_are_one_line_errors(tmp_path, capsys):
    assert main(["loss", "pretrain", "--out", str(tmp_path / "x.pt"), "mutation=cauchy"]) == 2
    assert "'mutation' must be one of chaotic, gaussian, got 'cauchy'" in capsys.readouterr().err
    assert main(["loss", "pretrain", "--out", str(tmp_path / "x.pt"), "parents=9", "population=4"]) == 2
    assert not (tmp_path / "x.pt").exists()


def test_rank_and_curves_commands(loss_file, tmp_path, capsys):
    assert main(["loss", "rank", str(loss_file), "--pairs", "600"]) == 0
    out = capsys.readouterr().out
    assert "| CE |" in out and "| NGL |" in out and "EDL-style chaotic seed 0" in out
    png = tmp_path / "fitness.png"
    assert main(["loss", "curves", str(loss_file), "--out", str(png)]) == 0 and png.stat().st_size > 1000


def test_detached_context_gives_the_gradient_direction_of_cross_entropy(loss_file):
    logits = torch.randn(12, 10, generator=torch.Generator().manual_seed(4)) * 3
    targets = torch.arange(12) % 10
    grads = {}
    for detach in (True, False):
        z = logits.clone().requires_grad_(True)
        LearnedLoss(10, path=str(loss_file), detach_context=detach)(z, targets).sum().backward()
        grads[detach] = z.grad
    z = logits.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(z, targets, reduction="sum").backward()
    scale = (grads[True] * z.grad).sum(1) / (z.grad * z.grad).sum(1)
    assert (scale > 0).all() and torch.allclose(grads[True], scale[:, None] * z.grad, atol=1e-5)
    assert not torch.allclose(grads[False], grads[True], atol=1e-4)  # the context's own gradient
