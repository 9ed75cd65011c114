"""Natural Selection weighting: scores, composites, weights and their isolation from training."""

import pytest
import torch
import torch.nn as nn

from sfda.config import config_from_dict
from sfda.engine.runner import run_stage
from sfda.weighting import WeightInput, build_weighter
from sfda.weighting.ns import NaturalSelection, default_grid, make_composites, ns_scores


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
    assert torch.equal(s[1], torch.ones(4))  # underflow: neutral scores


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
                    tile = comp[g, :, r * H // R : (r + 1) * H // R, c * W // C : (c + 1) * W // C]
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
        assert torch.equal(v, before[k]), k  # running statistics (and counters) unchanged
    assert model.training and model.bn.training  # train mode restored
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
    stats = ns.epoch_end(0).stats
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
    w, losses = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 4.0])
    assert ns.reduce(w, losses).item() == pytest.approx((2 + 12) / 4)
    assert NaturalSelection(3, m=4).reduce(w, losses).item() == pytest.approx((2 + 12) / 2)
    assert NaturalSelection(3, m=4).weighted_loss(
        losses, WeightInput(FavouredClass(), torch.randn(2, 1, 8, 8), torch.tensor([0, 1]))
    ).item() == pytest.approx(1.6 * 3)  # leftovers: w = 0.6 + 1


def test_config_builds_ns_and_checks_grid():
    from sfda.errors import ConfigError

    cfg = config_from_dict({"weighting": {"name": "ns", "m": 8, "sigma": 0.6}})
    w = build_weighter(cfg, 10)
    assert w.grid == (2, 4) and w.display(cfg.weighting) == "NS-WS"
    assert w.hparams.m == 8 and w.hparams.sigma == 0.6 and w.hparams.rho == 1.0 and w.hparams.reduction == "mean"
    with pytest.raises(
        ConfigError, match=r"'weighting.grid' must be \[R, C\] with R \* C = m = 4 cells .*got \[1, 3\]"
    ):
        config_from_dict({"weighting": {"name": "ns", "grid": [1, 3]}})
    assert build_weighter(config_from_dict({"weighting": {"name": "ns", "m": 6, "grid": [3, 2]}}), 10).grid == (3, 2)
    assert NaturalSelection.display({"rho": -1}) == "NS-LF"


@pytest.mark.parametrize(
    "override, message",
    [
        ("weighting.m=1", r"'weighting.m' must be in \[2, inf[\])], got 1 \(weighter 'ns'\)"),
        ("weighting.m=2.5", r"'weighting.m' must be an integer, got 2.5"),
        ("weighting.reduction=sum", r"'weighting.reduction' must be one of mean, normalized, got 'sum'"),
        ("weighting.grid=[2, 3]", r"'weighting.grid' must be \[R, C\] with R \* C = m = 4 cells"),
        ("weighting.save_scores=maybe", r"'weighting.save_scores' must be true or false, got 'maybe'"),
    ],
)
def test_ns_parameters_are_checked_when_the_config_loads(override, message):
    from sfda.config import load_config
    from sfda.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^command line: " + message):
        load_config("configs/digits/cowa/mnist5k_uci.yaml", ["weighting.name=ns", override])
    with pytest.raises(ConfigError, match=message.split(" must")[0]):  # code builds them checked too
        key, value = override.split(".", 1)[1].split("=")
        import yaml

        NaturalSelection(10, **{key: yaml.safe_load(value)})


def test_a_bad_weighter_value_stops_sfda_run_before_any_run_directory(tmp_path, capsys):
    from sfda.cli import main

    out = tmp_path / "runs"
    code = main(
        [
            "run",
            "-c",
            "configs/digits/cowa/mnist5k_uci.yaml",
            "weighting.name=ns",
            "weighting.m=1",
            f"output_root={out}",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert len(err.splitlines()) == 1 and "'weighting.m' must be in [2, inf" in err and "got 1" in err, err


def test_other_weighters_declare_typed_parameters():
    from sfda.errors import ConfigError
    from sfda.registry import WEIGHTERS

    with pytest.raises(ConfigError, match=r"'weighting.form' must be one of exp, linear, cdan, got 'log'"):
        config_from_dict({"weighting": {"name": "entropy", "form": "log"}})
    with pytest.raises(ConfigError, match=r"'weighting.power' must be a number"):
        config_from_dict({"weighting": {"name": "confidence", "power": "high"}})
    with pytest.raises(ConfigError, match=r"unknown key 'weighting.reduction'"):  # none weights nothing
        config_from_dict({"weighting": {"name": "none", "reduction": "normalized"}})
    for name in WEIGHTERS.names():
        cls = WEIGHTERS.get(name)
        assert not hasattr(cls, "defaults") and not hasattr(cls, "param_defaults"), name
        assert build_weighter(config_from_dict({"weighting": {"name": name}}), 3).hparams == cls.Params(), name


def test_the_none_weighter_is_the_plain_mean_and_records_nothing():
    weighter = build_weighter(config_from_dict({}), 3)
    assert type(weighter).__name__ == "NoWeighting" and weighter.display({}) == "none"
    losses = torch.tensor([1.0, 2.0, 4.0], requires_grad=True)
    loss = weighter.weighted_loss(losses, WeightInput(None, torch.zeros(3, 1), torch.tensor([0, 1, 2])))
    assert torch.equal(loss, losses.mean()) and loss.requires_grad
    report = weighter.epoch_end(0, keep_samples=True)
    assert report.stats == {} and report.histograms == {} and report.samples is None


def test_ns_reports_statistics_histograms_and_kept_scores():
    model = FavouredClass()
    x = torch.randn(10, 1, 8, 8)
    y = torch.tensor([0, 1, 1, 1, 1, 1, 1, 1, 2, 2])  # two groups of four, two leftovers
    ns = NaturalSelection(3, m=4, sigma=0.6)
    w = ns(WeightInput(model, x, y, None, torch.arange(10, 20)))
    report = ns.epoch_end(0, keep_samples=True)
    assert list(report.stats) == [
        "weight_mean",
        "weight_std",
        "weight_min",
        "weight_max",
        "clamped_fraction",
        "score_std",
        "class_score_spread",
    ]
    scores = w - 0.6
    assert report.stats["weight_mean"] == pytest.approx(w.mean().item())
    assert report.stats["clamped_fraction"] == 0 and report.stats["score_std"] == pytest.approx(
        scores.std(unbiased=False).item()
    )
    means = [scores[y == k].mean().item() for k in range(3)]
    assert report.stats["class_score_spread"] == pytest.approx(max(means) - min(means))
    assert torch.allclose(report.histograms["ns/score"], scores) and torch.equal(report.histograms["ns/weight"], w)
    assert (report.histograms["ns/score"] == 1).sum() >= 2  # the two leftovers score exactly 1
    assert report.scalars == pytest.approx({f"ns_class_score/class_{k:03d}": means[k] for k in range(3)})
    assert report.samples_file == "ns_scores.pt"
    kept = report.samples
    assert kept["epoch"] == 1 and torch.equal(kept["indices"], torch.arange(10, 20)) and torch.equal(kept["targets"], y)
    assert (
        torch.equal(kept["scores"], report.histograms["ns/score"])
        and torch.equal(kept["weights"], w)
        and (kept["sigma"], kept["rho"], kept["m"]) == (0.6, 1.0, 4)
    )
    # a fresh epoch; without keep_samples (or save_scores) no arrays are returned
    ns(WeightInput(model, x, y))
    again = ns.epoch_end(1)
    assert again.samples is None and again.stats["weight_mean"] == pytest.approx(w.mean().item())
    quiet = NaturalSelection(3, m=4, save_scores=False)
    quiet(WeightInput(model, x, y))
    assert quiet.epoch_end(0, keep_samples=True).samples is None
    assert NaturalSelection(3).epoch_end(0, keep_samples=True) == type(report)()  # no step: an empty report


def test_uniform_weighter_gives_exactly_the_unweighted_run(two_domains, tmp_path, tiny_config):
    src = config_from_dict(
        tiny_config(two_domains, tmp_path, **{"name": "s", "method.name": "source", "optim.epochs": 2})
    )
    run_stage(src)
    from sfda.engine.runner import run_dir

    def adapt(name, weighting):
        return run_stage(
            config_from_dict(
                tiny_config(
                    two_domains,
                    tmp_path,
                    **{
                        "name": name,
                        "method.name": "shot",
                        "source.checkpoint": str(run_dir(src)),
                        "optim.epochs": 2,
                        "weighting": weighting,
                    },
                )
            )
        )

    a = adapt("none", {"name": "none"})
    b = adapt("uniform", {"name": "uniform"})
    assert a["accuracy"] == b["accuracy"]
    assert [h.get("loss") for h in a["history"]] == [h.get("loss") for h in b["history"]]
    c = adapt("ns", {"name": "ns", "m": 4, "sigma": 0.6})
    assert c["label"] == "SHOT+NS-WS" and "w_weight_mean" in c["history"][1]
    assert [h.get("loss") for h in a["history"]] != [h.get("loss") for h in c["history"]]
    scores = torch.load(run_dir(config_from_dict(tiny_config(two_domains, tmp_path, name="ns"))) / "ns_scores.pt")
    assert set(scores) == {"first", "last"} and scores["last"]["scores"].numel() > 0


def test_ns_in_supervised_training(two_domains, tmp_path, tiny_config):
    m = run_stage(
        config_from_dict(
            tiny_config(
                two_domains,
                tmp_path,
                **{
                    "name": "sup",
                    "method.name": "source",
                    "optim.epochs": 2,
                    "weighting": {"name": "ns", "m": 2, "sigma": 2.5, "rho": -1.0},
                },
            )
        )
    )
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
    torch.save(
        {
            "last": {
                "epoch": 3,
                "indices": torch.arange(400),
                "targets": t,
                "scores": s,
                "weights": 0.6 + s,
                "sigma": 0.6,
                "rho": 1.0,
                "m": 4,
            }
        },
        tmp_path / "ns_scores.pt",
    )
    (tmp_path / "metrics.json").write_text(json.dumps({"per_class_accuracy": [10.0, 30.0, 50.0, 70.0, 90.0]}))
    assert main(["plot", str(tmp_path)]) == 0
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == [
        "ns_class_boxplot.png",
        "ns_class_vs_accuracy.png",
        "ns_class_vs_size.png",
        "ns_sorted_weights.png",
    ]
    for n in names:
        with Image.open(tmp_path / "plots" / n) as im:
            assert im.size[0] > 300 and im.size[1] > 200
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_plot_needs_an_ns_run(tmp_path, capsys):
    from sfda.cli import main

    assert main(["plot", str(tmp_path)]) == 2
    assert "weighting.name=ns" in capsys.readouterr().err


def test_replayed_forward_on_the_cpu_is_the_plain_eval_mode_pass_without_gradient():
    from sfda.engine.cuda_graph import ReplayedForward

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)).train()
    net[1].running_mean.fill_(0.5)
    net[3].eval()  # a submodule's own flag is kept
    x = torch.randn(6, 3, 8, 8)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    out = ReplayedForward(amp=True, graph=True)(net, x)  # CPU: no graph, no autocast
    assert not out.requires_grad
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # BatchNorm statistics untouched
    assert net.training and net[1].training and not net[3].training
    net.eval()
    assert torch.equal(out, net(x).detach())


def test_replayed_forward_warns_once_when_a_pass_cannot_be_captured():
    from sfda.engine.cuda_graph import ReplayedForward

    replay = ReplayedForward(what="X: the pass", hint="set x.graph=false to silence this")
    with pytest.warns(
        UserWarning,
        match=r"^X: the pass could not be captured as a CUDA graph .*running it without "
        r"\(set x.graph=false to silence this\)$",
    ) as record:
        assert replay._capture(nn.Linear(2, 2), torch.zeros(1, 2)) is None  # a CPU tensor cannot be captured
        assert replay._capture(nn.Linear(2, 2), torch.zeros(3, 2)) is None
    assert len(record) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on a GPU machine)")
def test_replayed_forward_replays_one_graph_per_shape_within_its_bound():
    from sfda.engine.cuda_graph import ReplayedForward

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)).cuda().train()
    replay = ReplayedForward(amp=False, max_graphs=2)
    for size in (4, 5, 6, 4):
        x = torch.randn(size, 8, device="cuda")
        with torch.no_grad():
            expected = net.eval()(x)
        net.train()
        assert torch.allclose(replay(net, x), expected, atol=1e-5) and net.training
    assert [key[1] for key in replay.graphs] == [(4, 8), (5, 8), (6, 8)]
    assert [value is None for value in replay.graphs.values()] == [False, False, True]  # past the bound: plain


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on a GPU machine)")
def test_cuda_graph_pass_matches_the_plain_pass_and_follows_training():
    """The composite pass replayed as a CUDA graph gives the plain pass's scores, sees parameter updates made
    in place by the optimizer, leaves BatchNorm statistics alone and keeps train mode."""
    torch.manual_seed(0)
    dev = torch.device("cuda")
    net = (
        nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 5),
        )
        .to(dev)
        .train()
    )
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
        nn.functional.cross_entropy(net(x), y).backward()  # updates parameters and BN statistics in place
        opt.step()
    graphs = graphed.composite_pass.graphs
    assert len(graphs) == 1 and next(iter(graphs.values())) is not None
    # a smaller last batch gets its own graph
    graphed(WeightInput(net, x[:8], y[:8]))
    assert len(graphs) == 2
