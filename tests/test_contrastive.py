"""AdaContrast and PLUE: the shared pieces against hand-computed values (soft voting, InfoNCE masks, momentum
update, queue wrap, PLUE's weight), multi-view batches, resume equality with the key model, queue and banks,
and a short adaptation on the generated two-domain images."""

import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sfda.config import config_from_dict
from sfda.data.views import MultiView, strong_recipe, strong_view, use_views
from sfda.datatypes import Batch, Inference, StepInfo
from sfda.engine.runner import run_dir, run_stage
from sfda.methods._contrastive import KeyQueue, RingBank, class_aware_mask, info_nce, soft_vote, temporal_mask
from sfda.methods.plue import negative_learning, uncertainty_weight
from sfda.models.momentum import momentum_copy, momentum_update
from sfda.models.network import build_model
from sfda.registry import METHODS

pytestmark = pytest.mark.usefixtures("one_thread")


# -- the pieces, by hand -------------------------------------------------------------------------------------
def test_soft_vote_averages_the_k_nearest_predictions():
    bank = F.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]]), dim=1)
    probs = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.0, 1.0]])
    query = torch.tensor([[2.0, 0.5]])  # cosine: 0.970, 0.922, 0.243, -0.970 -> rows 0, 1 are the 2 nearest
    out = soft_vote(query, bank, probs, 2, backend="torch")
    assert torch.allclose(out, torch.tensor([[0.7, 0.3]]))
    out3 = soft_vote(query, bank, probs, 3, backend="torch")
    assert torch.allclose(out3, torch.tensor([[1.6 / 3, 1.4 / 3]]))


def test_ring_bank_votes_and_writes_at_its_pointer():
    bank = RingBank("torch")
    bank.fill(torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), torch.eye(3))
    assert torch.allclose(bank.features.norm(dim=1), torch.ones(3))
    assert torch.allclose(bank.vote(torch.tensor([[1.0, 0.1]]), 1), torch.tensor([[1.0, 0.0, 0.0]]))
    bank.write(torch.tensor([[0.0, 5.0], [5.0, 0.0]]), torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    assert int(bank.ptr) == 2 and torch.equal(bank.probs[0], torch.tensor([0.0, 0.0, 1.0]))
    bank.write(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.eye(3)[:2])  # rows 2, then 0 (wraps)
    assert (
        int(bank.ptr) == 1
        and torch.equal(bank.probs[2], torch.eye(3)[0])
        and torch.equal(bank.probs[0], torch.eye(3)[1])
    )


def test_class_aware_mask_removes_exactly_the_same_label_keys():
    pseudo = torch.tensor([0, 2, 1])
    queue_labels = torch.tensor([2, 0, 0, 1, 2])
    keep = class_aware_mask(pseudo, queue_labels)
    assert keep.tolist() == [
        [True, False, False, True, True],
        [False, True, True, True, False],
        [True, True, True, False, True],
    ]
    q = F.normalize(torch.randn(3, 4), dim=1)
    k = F.normalize(torch.randn(3, 4), dim=1)
    queue = F.normalize(torch.randn(5, 4), dim=1)
    tau = 0.5
    loss = info_nce(q, k, queue, keep, tau)
    for i in range(3):  # -l0 + log(exp(l0) + sum over the kept negatives only)
        l0 = (q[i] @ k[i]) / tau
        negatives = [(q[i] @ queue[m]) / tau for m in range(5) if queue_labels[m] != pseudo[i]]
        expected = -l0 + torch.log(torch.exp(l0) + sum(torch.exp(v) for v in negatives))
        assert torch.isclose(loss[i], expected, atol=1e-5)
    assert torch.allclose(
        info_nce(q, k, queue, torch.ones(3, 5, dtype=torch.bool), tau),
        F.cross_entropy(
            torch.cat([(q * k).sum(1, keepdim=True), q @ queue.t()], 1) / tau,
            torch.zeros(3, dtype=torch.long),
            reduction="none",
        ),
        atol=1e-5,
    )


def test_temporal_mask_compares_slot_by_slot():
    query = torch.tensor([[0, 1, 2]])
    keys = torch.tensor(
        [
            [1, 2, 0],  # same labels, other positions: kept (not a set intersection)
            [0, 2, 0],  # slot 0 equal: removed
            [3, 3, 2],  # slot 2 equal: removed
            [3, 3, 3],
        ]
    )  # all differ: kept
    assert temporal_mask(query, keys).tolist() == [[True, False, False, True]]


def test_momentum_update_formula():
    torch.manual_seed(0)
    query = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    key = momentum_copy(query)
    assert all(not p.requires_grad for p in key.parameters())
    before = {n: p.clone() for n, p in key.named_parameters()}
    with torch.no_grad():
        for p in query.parameters():
            p.add_(1.0)
    query.train()
    query(torch.randn(4, 3))  # moves the query's BN running mean: the key's must not follow
    momentum_update(key, query, 0.9)
    for n, p in key.named_parameters():
        assert torch.allclose(p, 0.9 * before[n] + 0.1 * dict(query.named_parameters())[n])
    assert torch.equal(key[1].running_mean, torch.zeros(2))


def test_queue_wraps_around():
    queue = KeyQueue(size=5, dim=2, num_classes=3, num_samples=10)
    assert torch.allclose(queue.keys.norm(dim=1), torch.ones(5))
    keys = F.normalize(torch.arange(8.0).view(4, 2) + 1, dim=1)
    queue.enqueue(keys[:3], torch.tensor([0, 1, 2]), torch.tensor([7, 8, 9]))
    assert int(queue.ptr) == 3
    queue.enqueue(keys, torch.tensor([2, 2, 1, 0]), torch.tensor([1, 2, 3, 4]))  # slots 3, 4, 0, 1
    assert int(queue.ptr) == 2
    assert queue.labels.tolist() == [1, 0, 2, 2, 2] and queue.indices.tolist() == [3, 4, 9, 1, 2]
    assert torch.equal(queue.keys[0], keys[2]) and torch.equal(queue.keys[4], keys[1])


def test_plue_weight_against_hand_computed_entropy():
    p = torch.tensor([[0.5, 0.25, 0.25, 0.0], [0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0]])
    w = uncertainty_weight(p)
    h = [
        -(0.5 * math.log2(0.5 + 1e-5) + 2 * 0.25 * math.log2(0.25 + 1e-5) + 0.0),  # 1.5 bits
        -4 * 0.25 * math.log2(0.25 + 1e-5),  # 2 bits
        -math.log2(1 + 1e-5),
    ]  # 0 bits
    expected = torch.tensor([math.exp(-x / 2.0) for x in h])  # log2(4) = 2
    assert torch.allclose(w, expected, atol=1e-6)
    assert abs(w[1].item() - math.exp(-1)) < 1e-4 and abs(w[2].item() - 1.0) < 1e-4


def test_negative_learning_never_picks_the_pseudo_label():
    torch.manual_seed(0)
    logits = torch.zeros(200, 5)
    labels = torch.randint(0, 5, (200,))
    logits[torch.arange(200), labels] = 50.0  # all mass on the pseudo-label: 1 - p[yc] = 1 for any yc != y
    assert torch.allclose(negative_learning(logits, labels), torch.zeros(200), atol=1e-5)
    logits = torch.zeros(1, 2)  # C = 2: the complementary label is the other class, p = 0.5
    assert torch.isclose(negative_learning(logits, torch.tensor([0])), torch.tensor([math.log(2.0)]))


# -- views -------------------------------------------------------------------------------------------------------
class _Set:
    def __init__(self, transform, mode="L", size=28):
        self.transform, self.mode, self.size = transform, mode, size

    def __getitem__(self, i):
        return self.transform(Image.new(self.mode, (self.size, self.size), 128)), 0, i


def test_views_stack_a_weak_and_two_strong_views():
    from types import SimpleNamespace

    from torchvision import transforms as T

    cfg = SimpleNamespace(data=SimpleNamespace(transform="digits", crop_size=224))
    finish = T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))])
    data = _Set(finish)
    use_views(data, strong_view(strong_recipe("auto", cfg.data), finish))
    assert isinstance(data.transform, MultiView) and data[0][0].shape == (3, 1, 28, 28)
    assert torch.equal(data[0][0][0], finish(Image.new("L", (28, 28), 128)))  # the weak view is the set's own
    use_views(data, strong_view(strong_recipe("affine", cfg.data), finish))  # again: the weak view stays
    assert len(data.transform.transforms) == 3 and data.transform.transforms[0] is finish
    cfg.data.transform = "imagenet"
    rgb = _Set(T.Compose([T.RandomCrop(224), T.ToTensor()]), "RGB", 256)
    use_views(rgb, strong_view(strong_recipe("auto", cfg.data), T.Compose([T.CenterCrop(224), T.ToTensor()])))
    assert rgb[0][0].shape == (3, 3, 224, 224)


class _ListSet(list):
    transform = staticmethod(lambda img: torch.zeros(3, 16, 16))


# -- whole runs ---------------------------------------------------------------------------------------------------
CASES = {
    "adacontrast": {"method.name": "adacontrast"},
    "plue": {"method.name": "plue"},
    "plue_ns": {"method.name": "plue", "weighting.name": "ns", "weighting.m": 4, "weighting.sigma": 0.6},
}


def _adapt(root, out, tiny_source_dir, tiny_config, case, **extra):
    return config_from_dict(
        tiny_config(
            root,
            out,
            **{
                "name": f"tiny/{case}",
                "source.checkpoint": str(tiny_source_dir),
                "optim.epochs": 2,
                "method.queue_size": 100,
                **CASES[case],
                **extra,
            },
        )
    )


@pytest.mark.parametrize("case", list(CASES))
def test_adaptation_resumes_exactly_and_raises_target_accuracy(
    two_domains, tiny_source_dir, tiny_config, tmp_path, case, same_run
):
    full_cfg = _adapt(two_domains, tmp_path / "full", tiny_source_dir, tiny_config, case)
    full = run_stage(full_cfg)
    assert full["accuracy"] > full["source_only_accuracy"] + 20, (full["source_only_accuracy"], full["accuracy"])
    cfg = _adapt(two_domains, tmp_path / "resumed", tiny_source_dir, tiny_config, case)
    assert run_stage(cfg, stop_after_epoch=1) is None
    state = torch.load(run_dir(cfg) / "state.pt", weights_only=False)["method"]
    assert state["queue"]["keys"].shape == (100, 32) and int(state["queue"]["ptr"]) == 160 % 100
    assert {k.split(".")[0] for k in state["key_model"]} == {"netF", "netB", "netC"}  # the whole momentum copy
    assert state["bank"]["features"].shape[0] == 160
    if case.startswith("plue"):
        assert state["memory"].shape == (160, 5)
    resumed = run_stage(cfg)

    same_run(full_cfg, cfg, full, resumed)


@pytest.mark.parametrize("name", ["adacontrast", "plue"])
def test_everything_a_contrastive_method_keeps_is_in_its_state(two_domains, tiny_config, tmp_path, name):
    cfg = config_from_dict(tiny_config(two_domains, tmp_path, **{"method.name": name}))
    model = build_model(cfg)
    method = METHODS.get(name)(model, 4, dict(cfg.method), cfg)
    method.setup(_ListSet(range(16)), "cpu")
    model.eval()
    with torch.no_grad():
        features, logits = model(torch.randn(16, 3, 16, 16), return_features=True)
    method.on_epoch_start(0, Inference(features, logits, torch.arange(16) % 4))
    method.train_mode()
    out = method.training_step(
        Batch(torch.randn(8, 3, 3, 16, 16), torch.zeros(8, dtype=torch.long), torch.arange(8)), StepInfo(0, 1, 0, 1)
    )
    assert out.per_sample.shape == (8,) and out.weight_images.shape == (8, 3, 16, 16)
    saved = set(method.state_dict())
    assert set(vars(method)) - saved - set(method.NOT_STATE) <= {"train_size"}
    assert saved == ({"key_model", "queue", "bank"} | ({"memory", "memory_column"} if name == "plue" else set()))


def test_table_shows_the_published_numbers_with_the_protocol_note():
    from sfda.results.table import render

    runs = [
        {
            "benchmark": "domainnet-126",
            "task": "R_C",
            "label": label,
            "seed": 1,
            "score": 70.0,
            "stage": "adapt",
            "metric": "accuracy",
            "source_only_accuracy": 50.0,
        }
        for label in ("PLUE", "PLUE+NS-WS")
    ]
    lines = render(runs, "domainnet-126").splitlines()
    row = lines.index("| **PLUE** (ours) | 70.0 | 70.0 (1/7 tasks) |")
    assert lines[row + 1] == "| PLUE (PLUE paper) | 74.2 | 69.6 |"
    assert "| AdaContrast (AdaContrast paper) | 70.2 | 67.8 |" in lines
    notes = {line.split("):")[0][len("Note (") :]: line for line in lines if line.startswith("Note (")}
    assert {"AdaContrast paper", "PLUE paper"} <= set(notes)  # (and the notes of other methods' published rows)
    assert "best of 101" in notes["PLUE paper"] and "last epoch's argmax" in notes["PLUE paper"]
