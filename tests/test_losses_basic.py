import math

import torch

from sfda.losses import build_loss
from sfda.losses.information import entropy, im_loss


def test_im_loss_against_hand_computed_values():
    p = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    eps = 1e-5
    h1 = -(0.5 * math.log(0.5 + eps)) * 2
    h2 = -(1.0 * math.log(1.0 + eps) + 0.0)
    mean_p = [0.75, 0.25]
    hm = -(0.75 * math.log(0.75 + eps) + 0.25 * math.log(0.25 + eps))
    expected = (h1 + h2) / 2 - hm
    assert abs(im_loss(p).item() - expected) < 1e-6
    assert abs(im_loss(p, diversity=False).item() - (h1 + h2) / 2) < 1e-6
    assert abs(entropy(torch.tensor(mean_p)).item() - hm) < 1e-6


def test_im_loss_minimum_is_confident_and_balanced():
    K = 4
    confident_balanced = torch.eye(K)
    collapsed = torch.zeros(K, K)
    collapsed[:, 0] = 1
    uncertain = torch.full((K, K), 1.0 / K)
    # confident and balanced: 0 - log K (the minimum); uniform and collapsed predictions both score ~0
    assert abs(im_loss(confident_balanced).item() + math.log(K)) < 1e-3
    assert abs(im_loss(uncertain).item()) < 1e-3
    assert abs(im_loss(collapsed).item()) < 1e-3


def test_ce_and_label_smoothing_per_sample():
    z = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 2])
    ce = build_loss({"name": "ce"}, 3)(z, y)
    lp = torch.log_softmax(z, 1)
    assert ce.shape == (2,)
    assert torch.allclose(ce, -lp[torch.arange(2), y])
    ls = build_loss({"name": "label_smoothing", "eps": 0.1}, 3)(z, y)
    expected = 0.9 * (-lp[torch.arange(2), y]) + 0.1 * (-lp).mean(1)
    assert torch.allclose(ls, expected, atol=1e-6)
    assert torch.allclose(build_loss({"name": "label_smoothing", "eps": 0.0}, 3)(z, y), ce)
