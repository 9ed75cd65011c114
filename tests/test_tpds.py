"""TPDS: the nearest-neighbour trace on constructed graphs (visited nodes excluded, first confident node, fallback
after the step limit) and against a plain loop on random features; the confidence flags and the mutual-information
loss against hand-computed values; the per-sample term a weighter multiplies; the netF outputs of the epoch-start
pass; resume equality and a short adaptation on the generated two-domain images; the shipped configs and the
published numbers."""

import math
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from sfda.config import config_from_dict, load_config
from sfda.datatypes import Batch, Inference, StepInfo, WeightInput
from sfda.engine.evaluate import infer
from sfda.engine.runner import run_dir, run_stage
from sfda.errors import SfdaError
from sfda.methods.tpds import TPDS, confidence_flags, mi_per_sample, nearest_trace
from sfda.models.network import build_model
from sfda.results.paper import OH_TASKS, PAPER
from sfda.weighting.base import Weighter

pytestmark = pytest.mark.usefixtures("one_thread")


# -- the trace ---------------------------------------------------------------------------------------------------
def _ray(degrees):
    """Unit vectors at these angles (cosine similarity = cos of the angle between them), scaled 1, 2, 3, ... (the
    trace compares directions only)."""
    a = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return (torch.stack([a.cos(), a.sin()], dim=1) * torch.arange(1, len(degrees) + 1)[:, None]).float()


# Gaps grow along the ray, so every node's nearest other node is the one BEFORE it: a walk moves forward only
# because the nodes it has visited are excluded.
BANK = _ray([0, 10, 25, 45, 70, 100, 135, 175])
QUERY = _ray([1])  # nearest entry: node 0


def _flags(*confident):
    out = torch.zeros(len(BANK), dtype=torch.bool)
    out[list(confident)] = True
    return out


def test_trace_walks_past_visited_nodes_to_the_first_confident_one():
    node, hop = nearest_trace(QUERY, BANK, _flags(5), steps=70)
    assert (node.item(), hop.item()) == (5, 5)  # v0 = 0, then 1, 2, 3, 4, 5: node 2's nearest (1) is visited
    node, hop = nearest_trace(QUERY, BANK, _flags(3, 5), steps=70)
    assert (node.item(), hop.item()) == (3, 3)  # the first confident node, not a later one
    node, hop = nearest_trace(QUERY, BANK, _flags(0, 5), steps=70)
    assert (node.item(), hop.item()) == (5, 5)  # v0 (the query's nearest entry) is excluded, never examined
    node, hop = nearest_trace(QUERY, BANK, _flags(1), steps=70)
    assert (node.item(), hop.item()) == (1, 1)


def test_trace_falls_back_to_the_first_neighbour_after_the_step_limit():
    # as the reference's LN_MEM: a limit of S examines n_1 .. n_(S-1); node 5 is n_5
    assert nearest_trace(QUERY, BANK, _flags(5), steps=6) == (torch.tensor([5]), torch.tensor([5]))
    assert nearest_trace(QUERY, BANK, _flags(5), steps=5) == (torch.tensor([1]), torch.tensor([0]))
    assert nearest_trace(QUERY, BANK, _flags(1), steps=1) == (torch.tensor([1]), torch.tensor([0]))
    assert nearest_trace(QUERY, BANK, _flags(), steps=70) == (torch.tensor([1]), torch.tensor([0]))


def test_trace_can_exclude_the_samples_own_row_instead():
    own = torch.tensor([7])  # step 0 excludes row 7; node 0 becomes n_1 and node 5 is n_6
    assert nearest_trace(QUERY, BANK, _flags(5), steps=70, own=own) == (torch.tensor([5]), torch.tensor([6]))
    assert nearest_trace(QUERY, BANK, _flags(0), steps=70, own=own) == (torch.tensor([0]), torch.tensor([1]))


def _trace_by_loop(query, bank, confident, steps):
    """The trace of one query, written as a plain loop over Python lists."""
    unit = F.normalize(bank.double(), dim=1)

    def nearest(vector, excluded):
        sims = (unit @ F.normalize(vector.double(), dim=0)).tolist()
        return max((s, -i) for i, s in enumerate(sims) if i not in excluded)[1] * -1

    visited = [nearest(query, set())]  # v0
    first = nearest(query, set(visited))
    path = [first]
    visited.append(first)
    for t in range(1, steps):  # examine n_t, t = 1 .. steps - 1
        if confident[path[-1]]:
            return path[-1], t
        if t == steps - 1:
            break
        path.append(nearest(bank[path[-1]], set(visited)))
        visited.append(path[-1])
    return first, 0


@pytest.mark.parametrize("steps", [1, 2, 3, 10, 70])
def test_trace_matches_a_plain_loop_on_random_features(steps):
    g = torch.Generator().manual_seed(steps)
    bank = torch.randn(60, 8, generator=g)
    queries = bank[:12] + 0.3 * torch.randn(12, 8, generator=g)
    confident = torch.rand(60, generator=g) < 0.15
    node, hop = nearest_trace(queries, bank, confident, steps)
    want = [_trace_by_loop(q, bank, confident, steps) for q in queries]
    assert list(zip(node.tolist(), hop.tolist())) == want
    if steps == 70:
        assert hop.max() > 3 and (hop > 0).all()  # long walks happen, and all end at a confident node


def test_confidence_flags_by_hand():
    # 10 samples: the 5 largest entropies may be unconfident; the 6 nearest to a centroid are confident
    probs = torch.tensor(
        [[0.99, 0.01]] * 3
        + [[0.01, 0.99]] * 2
        + [[0.6, 0.4], [0.55, 0.45], [0.5, 0.5]] * 1
        + [[0.45, 0.55], [0.7, 0.3]]
    )
    features = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    flags = confidence_flags(features, probs, 0.5, 0.6)
    entropy = -(probs * (probs + 1e-5).log()).sum(1)
    high = set(entropy.argsort(descending=True)[:5].tolist())
    assert high == {5, 6, 7, 8, 9}
    points = F.normalize(torch.cat([features, torch.ones(10, 1)], 1), dim=1)
    centroids = probs.t() @ points / probs.sum(0)[:, None]  # both classes win some argmax: both live
    distance = (1 - points @ F.normalize(centroids, dim=1).t()).min(1).values
    near = set(distance.argsort()[:6].tolist())
    assert flags.tolist() == [not (i in high and i not in near) for i in range(10)]
    assert 0 < (~flags).sum() <= 4


# -- the mutual-information loss ------------------------------------------------------------------------------------
def _iic(p, q):
    """IIC's loss written out: the symmetrised normalised joint, entries floored at machine epsilon."""
    joint = (p.unsqueeze(2) * q.unsqueeze(1)).sum(0)
    joint = (joint + joint.t()) / 2
    joint = joint / joint.sum()
    row, col = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    joint = joint.clamp_min(sys.float_info.epsilon)
    return -(joint * (joint.log() - row.log() - col.log())).sum()


def test_mi_loss_by_hand():
    # identical one-hot predictions on two classes: J = diag(1/2, 1/2), I = log 2, each sample's share -log 2
    p = torch.eye(2)
    loss = mi_per_sample(p, p)
    assert torch.allclose(loss, torch.full((2,), -math.log(2)))
    # p = (1/2, 1/2), q = (1, 0): J = [[1/2, 1/4], [1/4, 0]], marginals (3/4, 1/4),
    # I = 1/2 log((1/2) / (9/16)) + 2 (1/4) log((1/4) / (3/16)) = 1/2 log(32/27)
    loss = mi_per_sample(torch.tensor([[0.5, 0.5]]), torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(-0.5 * math.log(32 / 27), abs=1e-6)
    # uniform predictions carry no information
    assert mi_per_sample(torch.full((4, 3), 1 / 3), torch.full((4, 3), 1 / 3)).abs().max() < 1e-6


def test_mi_per_sample_mean_is_iic_with_its_gradient():
    g = torch.Generator().manual_seed(3)
    zp, zq = torch.randn(16, 5, generator=g, requires_grad=True), torch.randn(16, 5, generator=g, requires_grad=True)
    ours = mi_per_sample(zp.softmax(1), zq.softmax(1)).mean()
    ref = _iic(zp.softmax(1), zq.softmax(1))
    assert ours.item() == pytest.approx(ref.item(), abs=1e-6)
    for a, b in zip(torch.autograd.grad(ours, [zp, zq]), torch.autograd.grad(ref, [zp, zq])):
        assert torch.allclose(a, b, atol=1e-6)


# -- the method on a tiny network -----------------------------------------------------------------------------------
class _Fixed(Weighter):
    """Given weights (a stand-in for NS)."""

    def __init__(self, w):
        super().__init__(4)
        self.w = w

    def weights(self, batch):
        return self.w


@pytest.fixture
def tiny_method(two_domains, tiny_config, tmp_path):
    cfg = config_from_dict(tiny_config(two_domains, tmp_path, **{"method.name": "tpds"}))
    torch.manual_seed(0)
    model = build_model(cfg)
    method = TPDS(model, 4, dict(cfg.method), cfg)
    method.setup(list(range(40)), "cpu")
    images = torch.randn(40, 3, 16, 16)
    loader = DataLoader(TensorDataset(images, torch.arange(40) % 4, torch.arange(40)), batch_size=16)
    inference = infer(model, loader, "cpu", backbone=True)
    return method, model, images, inference


def test_epoch_start_pass_keeps_the_netF_outputs(tiny_method):
    method, model, images, inference = tiny_method
    model.eval()
    with torch.no_grad():
        assert torch.allclose(inference.backbone_features, model.netF(images).flatten(1), atol=1e-6)
        assert torch.allclose(inference.features, model.netB(model.netF(images)), atol=1e-6)
    with pytest.raises(SfdaError, match="backbone"):
        method.on_epoch_start(0, Inference(inference.features, inference.logits, inference.labels))
    stats = method.on_epoch_start(0, inference)
    assert stats["confident"] >= 60.0 and method.bank is inference.backbone_features
    assert set(method.state_dict()) == set()  # the bank and the flags are rebuilt by every epoch-start pass


def test_the_weighter_multiplies_the_per_sample_mi_term(tiny_method):
    method, model, images, inference = tiny_method
    method.on_epoch_start(0, inference)
    method.train_mode()
    batch = Batch(images[:8], torch.zeros(8, dtype=torch.long), torch.arange(8))
    torch.manual_seed(1)
    out = method.training_step(batch, StepInfo(0, 1, 0, 1))
    assert out.per_sample.shape == (8,) and out.per_sample.requires_grad
    # the term is the batch's mutual information between p and the traced q, split over the samples
    assert out.logs["loss_mi"].item() == pytest.approx(out.per_sample.mean().item())
    losses = out.per_sample.detach()
    wi = WeightInput(model, batch.images, out.targets)
    assert _Fixed(torch.ones(8)).weighted_loss(losses, wi).item() == pytest.approx(losses.mean().item())
    assert _Fixed(torch.eye(8)[3] * 8).weighted_loss(losses, wi).item() == pytest.approx(losses[3].item())
    w = torch.linspace(0.6, 2.6, 8)
    assert _Fixed(w).weighted_loss(losses, wi).item() == pytest.approx((w * losses).mean().item())
    # zero weights remove the MI term's gradient entirely
    zero = _Fixed(torch.zeros(8)).weighted_loss(out.per_sample, wi)
    grads = torch.autograd.grad(zero, [p for p in model.parameters() if p.requires_grad], allow_unused=True)
    assert all(g is None or g.abs().max() == 0 for g in grads)
    # the weighter scores the traced neighbour's predicted class; the diversity term stays batch level
    assert out.targets.shape == (8,) and out.reduced_loss.requires_grad


# -- whole runs -----------------------------------------------------------------------------------------------------
CASES = {
    "tpds": {"method.name": "tpds", "method.div_par": 1.0},
    "tpds_ns": {
        "method.name": "tpds",
        "method.div_par": 1.0,
        "weighting.name": "ns",
        "weighting.m": 4,
        "weighting.sigma": 0.6,
    },
}


def _adapt(root, out, tiny_source_dir, tiny_config, case):
    return config_from_dict(
        tiny_config(
            root,
            out,
            **{
                "name": f"tiny/{case}",
                "source.checkpoint": str(tiny_source_dir),
                "optim.epochs": 2,
                "optim.classifier_lr_mult": 0.1,
                **CASES[case],
            },
        )
    )


@pytest.mark.parametrize("case", list(CASES))
def test_adaptation_raises_accuracy_and_resumes_exactly(
    two_domains, tiny_source_dir, tiny_config, tmp_path, case, same_run
):
    full_cfg = _adapt(two_domains, tmp_path / "full", tiny_source_dir, tiny_config, case)
    full = run_stage(full_cfg)
    assert full["accuracy"] > full["source_only_accuracy"] + 15, (full["source_only_accuracy"], full["accuracy"])
    h = full["history"]
    assert h[1]["loss_mi"] < 0 and 0 <= h[1]["trace_fallback"] < 0.5 and h[1]["trace_hops"] >= 1
    if case == "tpds_ns":
        assert full["label"] == "TPDS+NS-WS" and h[1]["w_weight_mean"] == pytest.approx(1.6, abs=1e-4)
    cfg = _adapt(two_domains, tmp_path / "resumed", tiny_source_dir, tiny_config, case)
    assert run_stage(cfg, stop_after_epoch=1) is None
    assert torch.load(run_dir(cfg) / "state.pt", weights_only=False)["method"] == {}
    resumed = run_stage(cfg)
    same_run(full_cfg, cfg, full, resumed)


# -- configs and published numbers --------------------------------------------------------------------------------
BENCHES = {  # tasks, lr, diversity weight (the reference's per-dataset settings)
    "office-home": (OH_TASKS, 1e-2, 0.5),
    "office31": (PAPER["office31"]["tasks"], 1e-2, 1.0),
    "visda-c": (["T_V"], 1e-3, 0.0),
    "domainnet-126": (PAPER["domainnet-126"]["tasks"], 1e-3, 1.0),
}


@pytest.mark.parametrize("bench", list(BENCHES))
def test_shipped_configs_have_the_reference_settings(bench):
    tasks, lr, div = BENCHES[bench]
    for t in tasks:
        plain, ns = load_config(f"{bench}/tpds/{t}"), load_config(f"{bench}/tpds_ns/{t}")
        assert (plain.label, ns.label, plain.task, ns.task) == ("TPDS", "TPDS+NS-WS", t, t)
        assert plain.method.to_dict() == ns.method.to_dict() and plain.optim.to_dict() == ns.optim.to_dict()
        m, o = plain.method, plain.optim
        assert (m.name, m.div_par, m.trace_steps, m.entropy_fraction, m.distance_fraction) == (
            "tpds",
            div,
            70,
            0.5,
            0.6,
        )
        assert not m.freeze_classifier and m.self_exclusion == "nearest"
        assert (o.epochs, o.lr, o.backbone_lr_mult, o.bottleneck_lr_mult, o.classifier_lr_mult) == (
            15,
            lr,
            0.1,
            1.0,
            0.1,
        )
        assert (o.momentum, o.nesterov, o.weight_decay, o.schedule, plain.data.batch_size) == (
            0.9,
            True,
            1e-3,
            "shot",
            64,
        )
        assert plain.weighting.name == "none" and (ns.weighting.name, ns.weighting.m, ns.weighting.sigma) == (
            "ns",
            4,
            0.6,
        )


def test_digits_configs():
    for task in ("mnist5k_uci", "uci_mnist5k"):
        plain, ns = load_config(f"digits/tpds/{task}"), load_config(f"digits/tpds_ns/{task}")
        assert plain.benchmark == ns.benchmark == "digits-offline" and plain.task == ns.task == task
        assert plain.method.freeze_classifier and plain.method.div_par == 1.0 and plain.optim.epochs == 30
        assert (ns.label, ns.weighting.name, ns.weighting.rho) == ("TPDS+NS-WS", "ns", 1.0)


def test_table_shows_the_published_numbers_with_their_source():
    from sfda.results.table import render

    runs = [
        {
            "benchmark": "office-home",
            "task": "Ar_Cl",
            "label": "TPDS",
            "seed": 1,
            "score": 58.0,
            "stage": "adapt",
            "metric": "accuracy",
            "source_only_accuracy": 45.0,
        }
    ]
    lines = render(runs, "office-home").splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("| **TPDS** (ours)"))
    assert lines[row + 1].startswith("| TPDS (TPDS, IJCV'24, secondary copy) | 59.3 |") and "73.5" in lines[row + 1]
    assert any(line.startswith("Note (") and "DIFO's comparison tables" in line for line in lines)
    o31 = {label: vals for label, _, vals in PAPER["office31"]["rows"]}
    assert o31["TPDS"]["avg"] == 90.2 and o31["TPDS"]["A_D"] == 97.1
