"""``learned``: an EDL-style loss, a small network over probabilities pretrained without data (frozen here).

In the spirit of Xiang and Pei's EDL (arXiv 2605.03722), whose network, inputs and constraints are not
public: everything below is sfda's design (docs/losses.md, "EDL-style learned loss").

Inputs per sample (from the logits, so they stay finite for any p_y):

- ``u1 = -log p_y`` (log_softmax) and ``u2 = 1 - p_y``: the true class, the only inputs the loss may use
  in a sign-constrained way;
- the non-target distribution ``q = softmax(z_k, k != y)`` (it does not change when p_y moves with the
  others' proportions fixed): ``c1 = max q`` (how concentrated the wrong mass is), ``c2 = H(q) / log(K-1)``
  (0 for K = 2), and ``c3 = log K / log 100``.

Network, ``hidden`` units: ``l = sum_j a_j softplus(w_j . (u1, u2) + v_j . (c1, c2, c3) + b_j)
+ (b_1 + 0.001) u1 + b_2 u2`` with ``a, w, b_1, b_2 >= 0`` (softplus of free weights) and ``v``, ``b`` free.
So ``l`` is finite and strictly increasing in ``u1`` (strictly decreasing in p_y) for any weights and any
fixed ``q``; the context may raise or lower the penalty. The value is divided by ``dl/du1`` at the uniform
prediction of the run's K, so its gradient there equals cross-entropy's (a drop-in for CE under SGD).
With ``detach_context`` (default) the context features are constants in backprop, as the noisy-label
references treat focal loss's modulating factor: the gradient with respect to the logits then points where
CE's does (z_y up, the others down in proportion to p_k), scaled per sample by the network. Without it the
network can lower the loss by flattening the wrong classes, which drove LeNet to a constant output in source
training on the digits (docs/losses.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..params import ParamError, param
from ..paths import resolve_path
from ..registry import LOSSES
from .base import KEY_PREFIX, Loss, LossParams

FILE_FORMAT = "sfda-learned-loss"
NUM_FEATURES = 5
MIN_SLOPE = 1e-3
SHIPPED_FILE = "configs/losses/edl_style.pt"  # `sfda loss pretrain --out configs/losses/edl_style.pt` (defaults)
CREATE_HINT = "create it with `sfda loss pretrain --out {path}`"


def num_weights(hidden: int) -> int:
    return 7 * hidden + 2


def loss_features(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[N, 5] features (u1, u2, c1, c2, c3) of logits [N, K] (float32, or float64 if given) and labels [N]."""
    logits = logits if logits.dtype == torch.float64 else logits.float()
    num_classes = logits.shape[1]
    log_p = F.log_softmax(logits, dim=1)
    log_py = log_p.gather(1, targets.long().view(-1, 1)).squeeze(1)
    target_mask = F.one_hot(targets.long(), num_classes).bool()
    log_q = F.log_softmax(logits.masked_fill(target_mask, float("-inf")), dim=1).masked_fill(target_mask, 0.0)
    q = log_q.exp().masked_fill(target_mask, 0.0)
    if num_classes > 2:
        entropy = -(q * log_q).sum(dim=1) / math.log(num_classes - 1)
    else:
        entropy = torch.zeros_like(log_py)
    scale = torch.full_like(log_py, math.log(num_classes) / math.log(100.0))
    return torch.stack([-log_py, -torch.expm1(log_py), q.max(dim=1).values, entropy, scale], dim=1)


def uniform_features(num_classes: torch.Tensor) -> torch.Tensor:
    """The features of the uniform prediction for each K in ``num_classes`` ([N] float): [N, 5]."""
    k = num_classes if num_classes.is_floating_point() else num_classes.float()
    two = k <= 2
    c1 = torch.where(two, torch.ones_like(k), 1.0 / (k - 1).clamp_min(1.0))
    c2 = torch.where(two, torch.zeros_like(k), torch.ones_like(k))
    return torch.stack([k.log(), 1.0 - 1.0 / k, c1, c2, k.log() / math.log(100.0)], dim=1)


def _unpack(theta: torch.Tensor, hidden: int) -> Dict[str, torch.Tensor]:
    h = hidden
    pop = theta.shape[0]
    return {
        "w": F.softplus(theta[:, : 2 * h]).view(pop, h, 2),
        "v": theta[:, 2 * h : 5 * h].view(pop, h, 3),
        "b": theta[:, 5 * h : 6 * h],
        "a": F.softplus(theta[:, 6 * h : 7 * h]),
        "slope_u1": F.softplus(theta[:, 7 * h]) + MIN_SLOPE,
        "slope_u2": F.softplus(theta[:, 7 * h + 1]),
    }


def _pre(weights: Dict[str, torch.Tensor], features: torch.Tensor) -> torch.Tensor:
    return (
        torch.einsum("phf,nf->pnh", weights["w"], features[:, :2])
        + torch.einsum("phc,nc->pnh", weights["v"], features[:, 2:])
        + weights["b"][:, None, :]
    )


def raw_values(theta: torch.Tensor, features: torch.Tensor, hidden: int) -> torch.Tensor:
    """Unnormalised losses [P, N] of P weight vectors ``theta`` [P, D] on features [N, 5]."""
    wts = _unpack(theta, hidden)
    hid = F.softplus(_pre(wts, features))
    return (
        (hid * wts["a"][:, None, :]).sum(-1)
        + wts["slope_u1"][:, None] * features[:, 0]
        + wts["slope_u2"][:, None] * features[:, 1]
    )


def uniform_slope(theta: torch.Tensor, num_classes: torch.Tensor, hidden: int) -> torch.Tensor:
    """d loss / d u1 at the uniform prediction of each K (u2 = 1 - exp(-u1) moves with u1): [P, N] > 0."""
    wts = _unpack(theta, hidden)
    features = uniform_features(num_classes)
    p_y = torch.exp(-features[:, 0])
    gate = torch.sigmoid(_pre(wts, features))  # d softplus / d pre
    d_pre = wts["w"][:, None, :, 0] + wts["w"][:, None, :, 1] * p_y[None, :, None]
    return (wts["a"][:, None, :] * gate * d_pre).sum(-1) + wts["slope_u1"][:, None] + wts["slope_u2"][:, None] * p_y


def loss_values(theta: torch.Tensor, features: torch.Tensor, hidden: int) -> torch.Tensor:
    """Normalised losses [P, N]: the raw value over the slope at the uniform prediction of the sample's K."""
    num_classes = torch.exp(features[:, 4] * math.log(100.0)).round()
    return raw_values(theta, features, hidden) / uniform_slope(theta, num_classes, hidden)


def read_loss_file(path: str) -> Dict[str, Any]:
    """The record written by ``sfda loss pretrain``; ValueError (one line, naming the file) if it is not one."""
    if not str(path).strip():
        raise ValueError("must name a file written by `sfda loss pretrain --out FILE`")
    file = resolve_path(path)
    if not file.is_file():
        raise ValueError(f"learned loss file '{path}' not found; {CREATE_HINT.format(path=path)}")
    try:
        record = torch.load(file, map_location="cpu", weights_only=True)
        ok = isinstance(record, dict) and record.get("format") == FILE_FORMAT
        theta = record.get("theta") if ok else None
        ok = ok and isinstance(theta, torch.Tensor) and theta.shape == (1, num_weights(int(record["hidden"])))
        ok = ok and isinstance(theta, torch.Tensor) and bool(torch.isfinite(theta).all())
    except Exception:  # any unreadable file is reported the same way
        ok = False
    if not ok:
        raise ValueError(
            f"'{path}' is not a learned loss file written by `sfda loss pretrain` (corrupt or another "
            f"format); recreate it with `sfda loss pretrain --out {path}`"
        )
    return record


@LOSSES.register("learned", aliases=("edl_style",))
class LearnedLoss(Loss):
    """EDL-style learned loss: a small network over probabilities, pretrained without data, used frozen.

    Made by `sfda loss pretrain --out FILE` (synthetic pairs, ranking consistency, chaotic-mutation evolution
    strategy); strictly decreasing in p_y by construction; sfda's design (docs/losses.md)."""

    @dataclass
    class Params(LossParams):
        path: str = param(
            SHIPPED_FILE,
            help="file written by `sfda loss pretrain --out FILE` (default: the "
            "shipped one, made by `sfda loss pretrain --out " + SHIPPED_FILE + "`)",
        )
        detach_context: bool = param(
            True,
            help="no gradient through the non-target features (c1, c2): the "
            "gradient points where CE's does, scaled per sample",
        )

        def check(self) -> None:
            try:
                read_loss_file(self.path)
            except ValueError as e:
                raise ParamError("path", str(e)) from None

    hparams: Params
    theta: torch.Tensor
    scale: torch.Tensor

    def __init__(self, num_classes: int, hparams: Optional[LossParams] = None, **overrides):
        super().__init__(num_classes, hparams, **overrides)
        try:
            record = read_loss_file(self.hparams.path)
        except ValueError as e:
            raise ConfigError(f"'{KEY_PREFIX}path' {e}") from None
        self.hidden = int(record["hidden"])
        theta = record["theta"].float()
        self.register_buffer("theta", theta)
        self.register_buffer("scale", uniform_slope(theta, torch.tensor([float(num_classes)]), self.hidden)[0])

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        features = loss_features(logits, targets)
        if self.hparams.detach_context:
            features = torch.cat([features[:, :2], features[:, 2:].detach()], dim=1)
        return raw_values(self.theta, features, self.hidden)[0] / self.scale
