"""Memory banks and k-nearest-neighbour search: known answers, back-end agreement, the no-faiss fallback."""

import math
import sys

import pytest
import torch

from sfda import neighbours
from sfda.errors import ConfigError
from sfda.neighbours import MemoryBank, knn, resolve_backend

# Six unit vectors at these angles: the cosine similarity falls with the angle gap, so the neighbour order is
# known. Gaps: 0.1, 0.15, 0.2, 0.25, 0.3.
ANGLES = [0.0, 0.1, 0.25, 0.45, 0.7, 1.0]
EXPECTED = {  # sample -> all others, nearest first
    0: [1, 2, 3, 4, 5],
    1: [0, 2, 3, 4, 5],
    2: [1, 3, 0, 4, 5],
    3: [2, 4, 1, 0, 5],
    4: [3, 5, 2, 1, 0],
    5: [4, 3, 2, 1, 0],
}


def circle(angles=ANGLES):
    a = torch.tensor(angles, dtype=torch.float32)
    return torch.stack([a.cos(), a.sin()], dim=1)


BACKS = ["torch"] + (["faiss"] if neighbours.faiss_available() else [])


@pytest.mark.parametrize("backend", BACKS)
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_neighbours_on_the_circle_are_the_known_ones(backend, k):
    f = circle()
    idx = torch.arange(6)
    sims, near = knn(f, f, k, exclude=idx, backend=backend)
    assert near.tolist() == [EXPECTED[i][:k] for i in range(6)]
    gaps = torch.tensor([[abs(ANGLES[i] - ANGLES[j]) for j in EXPECTED[i][:k]] for i in range(6)])
    assert torch.allclose(sims, gaps.cos(), atol=1e-6)
    # without exclusion every point is its own nearest neighbour
    _, with_self = knn(f, f, k, backend=backend)
    assert with_self[:, 0].tolist() == list(range(6))
    assert with_self[:, 1:].tolist() == [EXPECTED[i][: k - 1] for i in range(6)]


@pytest.mark.parametrize("backend", BACKS)
def test_excluded_row_outside_the_top_k_drops_the_last_candidate(backend):
    # queries that are not bank rows: excluding a far row must still return exactly the k nearest
    f = circle()
    q = circle([0.12, 0.95])
    _, near = knn(q, f, 2, exclude=torch.tensor([5, 0]), backend=backend)
    assert near.tolist() == [[1, 0], [5, 4]]
    _, near = knn(q, f, 2, exclude=torch.tensor([1, 5]), backend=backend)
    assert near.tolist() == [[0, 2], [4, 3]]


@pytest.mark.skipif(not neighbours.faiss_available(), reason="faiss is not installed")
def test_faiss_and_torch_agree_on_random_features():
    g = torch.Generator().manual_seed(0)
    bank = torch.nn.functional.normalize(torch.randn(500, 32, generator=g), dim=1)
    rows = torch.randperm(500, generator=g)[:64]
    for exclude in (rows, None):
        st, it = knn(bank[rows], bank, 7, exclude=exclude, backend="torch")
        sf, i_f = knn(bank[rows], bank, 7, exclude=exclude, backend="faiss")
        assert torch.equal(it, i_f)
        assert torch.allclose(st, sf, atol=1e-5)


def test_bank_fill_update_and_neighbours():
    bank = MemoryBank("torch")
    assert not bank.ready
    f = circle() * torch.tensor([[3.0], [0.5], [1.0], [2.0], [7.0], [1.0]])  # rows of any length
    s = torch.softmax(torch.randn(6, 3), dim=1)
    bank.fill(f, s)
    assert torch.allclose(bank.features.norm(dim=1), torch.ones(6))
    assert torch.allclose(bank.features, circle(), atol=1e-6)
    assert torch.equal(bank.scores, s) and bank.scores is not s  # a copy
    # move sample 5 next to sample 0 (angle 0.05): it becomes 0's and 1's nearest neighbour
    new = torch.tensor([[math.cos(0.05), math.sin(0.05)]]) * 4.0
    bank.update(torch.tensor([5]), new, torch.tensor([[0.0, 0.0, 1.0]]))
    assert torch.allclose(bank.features[5], new[0] / 4.0)
    assert bank.scores[5].tolist() == [0.0, 0.0, 1.0]
    assert torch.equal(bank.scores[:5], s[:5])  # other rows untouched
    near = bank.neighbours(bank.features[[0, 1]], 2, exclude=torch.tensor([0, 1]))
    assert near.tolist() == [[5, 1], [5, 0]]
    # state round trip
    other = MemoryBank("torch")
    other.load_state_dict(bank.state_dict())
    assert torch.equal(other.features, bank.features) and torch.equal(other.scores, bank.scores)


def test_bank_state_is_per_sample_state_and_round_trips_into_a_fresh_bank():
    empty = MemoryBank("torch")
    assert set(empty.state_dict()) == {"features", "scores"} and len(empty) == 0
    fresh = MemoryBank("torch")
    fresh.load_state_dict(empty.state_dict())  # a run stopped before the bank was filled
    assert not fresh.ready
    bank = MemoryBank("torch")
    bank.fill(circle(), torch.softmax(torch.randn(6, 4), dim=1))
    bank.update(torch.tensor([3]), torch.tensor([[0.0, 2.0]]), torch.tensor([[0.1, 0.2, 0.3, 0.4]]))
    saved = {k: v.clone() for k, v in bank.state_dict().items()}
    fresh = MemoryBank("torch")
    fresh.load_state_dict(saved)
    assert fresh.ready and len(fresh) == 6
    assert fresh.features.shape == (6, 2) and fresh.scores.shape == (6, 4)
    assert torch.equal(fresh.features, bank.features) and torch.equal(fresh.scores, bank.scores)
    assert torch.equal(
        fresh.neighbours(fresh.features, 3, exclude=torch.arange(6)),
        bank.neighbours(bank.features, 3, exclude=torch.arange(6)),
    )


def test_bank_must_be_filled_before_updates():
    with pytest.raises(RuntimeError, match="fill"):
        MemoryBank("torch").update(torch.tensor([0]), torch.ones(1, 2), torch.ones(1, 2))


def test_too_many_neighbours_is_a_config_error():
    f = circle()
    with pytest.raises(ConfigError, match="lower method.k"):
        knn(f, f, 6, exclude=torch.arange(6), backend="torch")
    with pytest.raises(ConfigError, match="knn_backend"):
        MemoryBank("annoy")
    with pytest.raises(ConfigError, match="knn_backend"):
        resolve_backend("annoy", "cpu")


def test_backend_resolution_and_fallback_without_faiss(monkeypatch):
    has = neighbours.faiss_available()
    assert resolve_backend("torch", "cpu") == "torch"
    assert resolve_backend("auto", "cpu") == ("faiss" if has else "torch")
    if not neighbours.faiss_gpu_available():  # CUDA tensors with a CPU-only faiss: torch on the GPU
        assert resolve_backend("auto", "cuda") == "torch"
    # faiss not importable: auto falls back to torch, an explicit faiss request is a config error
    monkeypatch.setitem(sys.modules, "faiss", None)
    neighbours._faiss.cache_clear()
    try:
        assert not neighbours.faiss_available()
        assert resolve_backend("auto", "cpu") == "torch"
        with pytest.raises(ConfigError, match="faiss is not installed"):
            resolve_backend("faiss", "cpu")
        f = circle()
        assert knn(f, f, 2, exclude=torch.arange(6))[1].tolist() == [EXPECTED[i][:2] for i in range(6)]
    finally:
        monkeypatch.undo()
        neighbours._faiss.cache_clear()
    assert neighbours.faiss_available() == has


def test_search_ignores_autocast():
    f = circle()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sims, near = knn(f, f, 3, exclude=torch.arange(6), backend="torch")
    assert sims.dtype == torch.float32
    assert near.tolist() == [EXPECTED[i][:3] for i in range(6)]
