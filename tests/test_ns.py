"""Natural Selection weighting: scores, composites, weights and their isolation from training."""
import pytest
import torch
import torch.nn as nn

from sfda.config import config_from_dict
from sfda.engine.runner import run_stage
from sfda.weighting import WeightInput, build_weighter
from sfda.weighting.ns import NaturalSelection, default_grid, make_composites, ns_scores

from helpers import tiny_config_dict


class PixelModel(nn.Module):
    """Logits = per-class means of fixed image regions, so the composite's content decides the output."""

    def __init__(self, K=3):
        super().__init__()
        self.bn = nn.BatchNorm2d(1)
        self.K = K

    def forward(self, x):
        x = self.bn(x[:, :1])
        return torch.stack([x.mean(dim=(1, 2, 3)) * (k + 1) for k in range(self.K)], dim=1)


def test_score_on_a_hand_computed_example():
    q = torch.tensor([[0.1, 0.3, 0.2, 0.4], [0.0, 0.0, 0.0, 0.0]])
    s = ns_scores(q)
    assert torch.allclose(s[0], torch.tensor([0.4, 1.2, 0.8, 1.6]))  # 4 * q / 1.0
    assert torch.equal(s[1], torch.ones(4))                            # underflow: neutral scores


def test_scores_of_every_group_average_to_one():
    torch.manual_seed(0)
    q = torch.rand(50, 4)
    assert torch.allclose(ns_scores(q).mean(dim=1), torch.ones(50), atol=1e-6)


@pytest.mark.parametrize("grid", [(1, 2), (2, 1), (2, 2), (2, 4), (4, 2), (4, 4)])
def test_composite_pixels_land_in_the_right_tiles(grid):
    R, C = grid
    m = R * C
    B, H, W = 2 * m + 1, 16, 16
    x = torch.arange(B, dtype=torch.float32).view(B, 1, 1, 1).expand(B, 3, H, W).contiguous()
    groups = torch.randperm(B)[: 2 * m].view(2, m)
    for direct in (True, False):
        comp = make_composites(x, groups, grid, direct=direct)
        assert comp.shape == (2, 3, H, W)
        for g in range(2):
            for r in range(R):
                for c in range(C):
                    tile = comp[g, :, r * H // R:(r + 1) * H // R, c * W // C:(c + 1) * W // C]
                    assert torch.all(tile == groups[g, r * C + c].float()), (grid, g, r, c, direct)


def test_direct_tiling_equals_resizing_the_full_composite():
    torch.manual_seed(1)
    x = torch.randn(16, 3, 224, 224)
    groups = torch.randperm(16).view(4, 4)
    a = make_composites(x, groups, (2, 2), direct=True)
    b = make_composites(x, groups, (2, 2), direct=False)
    assert torch.allclose(a, b, atol=1e-6)


def test_default_grids_follow_the_paper():
    assert [default_grid(m) for m in (2, 4, 8, 16)] == [(1, 2), (2, 2), (2, 4), (4, 4)]


def _batch(model, B=8, K=3, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(B, 1, 8, 8)
    y = torch.randint(0, K, (B,))
    return WeightInput(model, x, y, None, torch.arange(B))


def test_no_gradient_and_batchnorm_untouched_and_modes_restored():
    model = PixelModel()
    model.train()
    model.bn.running_mean.fill_(0.3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ns = NaturalSelection(3, m=4, sigma=0.6)
    w = ns(_batch(model))
    assert not w.requires_grad and w.grad_fn is None
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k           # running statistics (and counters) unchanged
    assert model.training and model.bn.training       # train mode restored
    # a frozen submodule in eval mode stays in eval mode
    model.bn.eval()
    ns(_batch(model))
    assert model.training and not model.bn.training


def test_ns_pass_adds_no_gradient_to_the_loss():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 3, (8,))
    ns = NaturalSelection(3, m=4)
    w = ns(WeightInput(net, x, y))
    loss = ns.reduce(w, nn.functional.cross_entropy(net(x), y, reduction="none"))
    loss.backward()
    g1 = net[1].weight.grad.clone()
    net.zero_grad()
    (w.detach() * nn.functional.cross_entropy(net(x), y, reduction="none")).mean().backward()
    assert torch.allclose(g1, net[1].weight.grad)


class FavouredClass(nn.Module):
    """Predicts class 0 with high probability for any input: class 0 is favoured, class 1 is not."""

    def forward(self, x):
        return torch.tensor([4.0, 0.0, 0.0]).expand(x.shape[0], 3).clone() + 0 * x.mean()


def test_ws_favours_the_favoured_class_and_lf_the_other():
    model = FavouredClass()
    x = torch.randn(4, 1, 8, 8)
    y = torch.tensor([0, 1, 1, 1])  # one group of four: sample 0 is of the favoured class
    ws = NaturalSelection(3, m=4, sigma=0.6, rho=1.0)(WeightInput(model, x, y))
    lf = NaturalSelection(3, m=4, sigma=2.0, rho=-1.0)(WeightInput(model, x, y))
    assert ws[0] > ws[1] and torch.allclose(ws[1:], ws[1].expand(3))
    assert lf[0] < lf[1]
    # hand-computed: p0 = e^4/(e^4+2), p1 = 1/(e^4+2); s = 4 p / (p0 + 3 p1)
    e = torch.exp(torch.tensor(4.0))
    p0, p1 = e / (e + 2), 1 / (e + 2)
    s0, s1 = 4 * p0 / (p0 + 3 * p1), 4 * p1 / (p0 + 3 * p1)
    assert torch.allclose(ws, torch.stack([0.6 + s0, 0.6 + s1, 0.6 + s1, 0.6 + s1]), atol=1e-5)


def test_floor_clamps_and_counts():
    model = FavouredClass()
    x = torch.randn(8, 1, 8, 8)
    y = torch.tensor([0, 1, 1, 1, 1, 1, 1, 1])  # one favoured sample: s ~ 3.8 > sigma, so 2 - s < 0
    ns = NaturalSelection(3, m=4, sigma=2.0, rho=-1.0, floor=0.0)
    w = ns(WeightInput(model, x, y))
    assert (w >= 0).all() and w[0] == 0 and (w[1:] > 0).all()
    stats = ns.epoch_end(0, 1)
    assert stats["clamped_fraction"] == pytest.approx(1 / 8)
    w = NaturalSelection(3, m=4, sigma=2.0, rho=-1.0, floor=0.5)(WeightInput(model, x, y))
    assert w[0] == 0.5


def test_leftover_samples_get_the_neutral_score():
    ns = NaturalSelection(3, m=4, sigma=0.0, rho=1.0)
    w = ns(WeightInput(FavouredClass(), torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 1, 1, 2, 2])))
    assert torch.isclose(w, torch.ones(6)).sum() >= 2  # two leftovers score exactly 1
    assert w.sum().item() == pytest.approx(6.0, abs=1e-4)  # the group averages to 1, leftovers are 1


def test_reductions():
    ns = NaturalSelection(3, m=4, reduction="normalized")
    w, l = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 4.0])
    assert ns.reduce(w, l).item() == pytest.approx((2 + 12) / 4)
    assert NaturalSelection(3, m=4).reduce(w, l).item() == pytest.approx((2 + 12) / 2)


def test_config_builds_ns_and_checks_grid():
    from sfda.errors import ConfigError
    cfg = config_from_dict({"weighting": {"name": "ns", "m": 8, "sigma": 0.6}})
    w = build_weighter(cfg, 10)
    assert w.grid == (2, 4) and w.display(cfg.weighting) == "NS-WS"
    with pytest.raises(ConfigError, match="does not have weighting.m=4 cells"):
        build_weighter(config_from_dict({"weighting": {"name": "ns", "grid": [1, 3]}}), 10)
    assert NaturalSelection.display({"rho": -1}) == "NS-LF"


def test_uniform_weighter_gives_exactly_the_unweighted_run(two_domains, tmp_path):
    src = config_from_dict(tiny_config_dict(two_domains, tmp_path, **{"name": "s", "method.name": "source", "optim.epochs": 2}))
    run_stage(src)
    from sfda.engine.runner import run_dir

    def adapt(name, weighting):
        return run_stage(config_from_dict(tiny_config_dict(two_domains, tmp_path, **{
            "name": name, "method.name": "shot", "source.checkpoint": str(run_dir(src)), "optim.epochs": 2,
            "weighting": weighting})))

    a = adapt("none", {"name": "none"})
    b = adapt("uniform", {"name": "uniform"})
    assert a["accuracy"] == b["accuracy"]
    assert [h.get("loss") for h in a["history"]] == [h.get("loss") for h in b["history"]]
    c = adapt("ns", {"name": "ns", "m": 4, "sigma": 0.6})
    assert c["label"] == "SHOT+NS-WS" and "w_weight_mean" in c["history"][1]
    assert [h.get("loss") for h in a["history"]] != [h.get("loss") for h in c["history"]]
    scores = torch.load(run_dir(config_from_dict(tiny_config_dict(two_domains, tmp_path, name="ns"))) / "ns_scores.pt")
    assert set(scores) == {"first", "last"} and scores["last"]["scores"].numel() > 0


def test_ns_in_supervised_training(two_domains, tmp_path):
    m = run_stage(config_from_dict(tiny_config_dict(two_domains, tmp_path, **{
        "name": "sup", "method.name": "source", "optim.epochs": 2,
        "weighting": {"name": "ns", "m": 2, "sigma": 2.5, "rho": -1.0}})))
    assert m["label"] == "Source+NS-LF" and m["history"][1]["w_weight_mean"] > 0


def test_simple_weighters():
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    b = WeightInput(None, torch.zeros(2, 1), torch.tensor([0, 1]), logits)
    conf = build_weighter(config_from_dict({"weighting": {"name": "confidence"}}), 3)(b)
    ent = build_weighter(config_from_dict({"weighting": {"name": "entropy"}}), 3)(b)
    lab = build_weighter(config_from_dict({"weighting": {"name": "label_confidence"}}), 3)(b)
    assert conf[0] > conf[1] and conf[1] == pytest.approx(1 / 3)
    assert ent[0] > ent[1] and ent[1] == pytest.approx(torch.exp(torch.tensor(-1.0)).item(), abs=1e-5)
    assert lab[1] == pytest.approx(1 / 3)


def test_plot_figures_from_saved_scores(tmp_path):
    import json

    from PIL import Image

    from sfda.cli import main
    from sfda.results.plots import pearson

    torch.manual_seed(0)
    t = torch.randint(0, 5, (400,))
    s = 0.5 + 0.2 * t.float() + 0.05 * torch.randn(400)  # class k scores rise with k
    torch.save({"last": {"epoch": 3, "indices": torch.arange(400), "targets": t, "scores": s,
                         "weights": 0.6 + s, "sigma": 0.6, "rho": 1.0, "m": 4}}, tmp_path / "ns_scores.pt")
    (tmp_path / "metrics.json").write_text(json.dumps({"per_class_accuracy": [10.0, 30.0, 50.0, 70.0, 90.0]}))
    assert main(["plot", str(tmp_path)]) == 0
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["ns_class_boxplot.png", "ns_class_vs_accuracy.png", "ns_class_vs_size.png", "ns_sorted_weights.png"]
    for n in names:
        with Image.open(tmp_path / "plots" / n) as im:
            assert im.size[0] > 300 and im.size[1] > 200
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_plot_needs_an_ns_run(tmp_path, capsys):
    from sfda.cli import main

    assert main(["plot", str(tmp_path)]) == 2
    assert "weighting.name=ns" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on a GPU machine)")
def test_cuda_graph_pass_matches_the_plain_pass_and_follows_training():
    """The composite pass replayed as a CUDA graph gives the plain pass's scores, sees parameter updates made
    in place by the optimizer, leaves BatchNorm statistics alone and keeps train mode."""
    torch.manual_seed(0)
    dev = torch.device("cuda")
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 5)).to(dev).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    x, y = torch.randn(16, 3, 32, 32, device=dev), torch.randint(0, 5, (16,), device=dev)
    graphed = NaturalSelection(5, m=4, amp=False, graph=True)
    plain = NaturalSelection(5, m=4, amp=False, graph=False)
    for step in range(3):
        bn = {k: v.clone() for k, v in net[1].state_dict().items()}
        torch.manual_seed(step)
        a = graphed(WeightInput(net, x, y))
        torch.manual_seed(step)
        b = plain(WeightInput(net, x, y))
        assert torch.allclose(a, b, atol=1e-4), (step, a, b)
        assert all(torch.equal(v, bn[k]) for k, v in net[1].state_dict().items())
        assert net.training and net[1].training
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()     # updates parameters and BN statistics in place
        opt.step()
    assert len(graphed._graphs) == 1 and next(iter(graphed._graphs.values())) is not None
    # a smaller last batch gets its own graph
    graphed(WeightInput(net, x[:8], y[:8]))
    assert len(graphed._graphs) == 2
