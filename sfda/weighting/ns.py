"""Natural Selection (NS) sample weighting: a composite-image competition score.

For a batch of B images with (pseudo-)labels y and a group size m = R x C:

1. Shuffle the batch and split it into G = floor(B/m) groups; leftover samples get the neutral score 1.
2. Tile each group's images into an R x C grid and resize the composite back to H x W (bilinear).
3. Run the model on the G composites without gradient, with every module in eval mode (BatchNorm running
   statistics are never touched; the previous train/eval flags are restored afterwards).
4. q_i = softmax(f(composite))[y_i]; the NS score s_i = m q_i / sum_{j in group} q_j (a group averages to 1;
   if the sum underflows to 0 every member gets 1).
5. w_i = sigma + rho s_i, clamped at ``floor`` (the clamped samples are counted). rho = +1 is NS-WS (winner
   strengthening), rho = -1 NS-LF (loser focusing); any real rho works.

When H and W are multiples of R and C (224 / 2, 28 / 2, ...), bilinear resizing never mixes pixels of two
tiles, so each image is resized to its tile size first and then tiled: the same composite, computed without
ever building the m-times larger image. Otherwise the full composite is built and resized.

On CUDA the composite pass runs in mixed precision (``amp``) and is replayed as a CUDA graph (``graph``), by the
engine's generic :class:`~sfda.engine.cuda_graph.ReplayedForward`. The epoch's statistics (clamped fraction,
score spread, per-class scores) and the kept scores are :mod:`sfda.weighting.ns_diagnostics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..engine.cuda_graph import ReplayedForward
from ..params import ParamError, param
from ..params import Params as ComponentParams
from ..registry import WEIGHTERS
from .base import Weighter, WeightingReport, WeightInput
from .ns_diagnostics import NSDiagnostics


def default_grid(m: int) -> Tuple[int, int]:
    """The most square R x C with R <= C: 2 -> 1x2, 4 -> 2x2, 8 -> 2x4, 16 -> 4x4."""
    r = math.isqrt(m)
    while m % r:
        r -= 1
    return r, m // r


def make_composites(
    images: torch.Tensor, groups: torch.Tensor, grid: Sequence[int], *, direct: Optional[bool] = None
) -> torch.Tensor:
    """images [B, C, H, W]; groups [G, m] batch indices, row-major over the grid -> composites [G, C, H, W]."""
    R, Cg = int(grid[0]), int(grid[1])
    G, m = groups.shape
    assert R * Cg == m, "grid must have m cells"
    ch, H, W = images.shape[1:]
    if direct is None:
        direct = H % R == 0 and W % Cg == 0
    if direct:
        tiles = (
            images
            if (R, Cg) == (1, 1)
            else F.interpolate(images, size=(H // R, W // Cg), mode="bilinear", align_corners=False)
        )
        t = tiles[groups.reshape(-1)].view(G, R, Cg, ch, H // R, W // Cg)
        return t.permute(0, 3, 1, 4, 2, 5).reshape(G, ch, H, W)
    big = images[groups.reshape(-1)].view(G, R, Cg, ch, H, W).permute(0, 3, 1, 4, 2, 5).reshape(G, ch, R * H, Cg * W)
    return F.interpolate(big, size=(H, W), mode="bilinear", align_corners=False)


def ns_scores(q: torch.Tensor) -> torch.Tensor:
    """q [G, m] raw scores -> NS scores m q / sum(q) per group (1 where the sum is 0)."""
    m = q.shape[1]
    total = q.sum(dim=1, keepdim=True)
    s = m * q / total.clamp_min(torch.finfo(q.dtype).tiny)
    return torch.where(total > 0, s, torch.ones_like(s))


@WEIGHTERS.register("ns")
class NaturalSelection(Weighter):
    """Natural Selection: w = sigma + rho * (group-relative composite score); rho +1 NS-WS, -1 NS-LF."""

    @dataclass
    class Params(Weighter.Params):
        m: int = param(4, low=2, help="group size: images per composite")
        grid: List[int] = param([], help="[R, C] with R*C = m (empty: the most square, 1x2, 2x2, 2x4, 4x4 ...)")
        sigma: float = param(0.6, help="base value (paper, SFDA: 0.6)")
        rho: float = param(1.0, help="+1 winner strengthening (WS), -1 loser focusing (LF), or any real value")
        floor: float = param(0.0, help="weights below it are clamped to it (and counted)")
        amp: bool = param(True, help="bf16/fp16 autocast for the composite pass on CUDA")
        graph: bool = param(True, help="replay the composite pass as a CUDA graph on CUDA (no effect on the CPU)")
        save_scores: bool = param(True, help="keep the first and last epoch's scores in ns_scores.pt (sfda plot)")

        def check(self) -> None:
            if self.grid and (len(self.grid) != 2 or self.grid[0] * self.grid[1] != self.m):
                raise ParamError("grid", f"must be [R, C] with R * C = m = {self.m} cells (or empty), got {self.grid}")

    label = "NS"
    MAX_GRAPHS = 4  # composite shapes captured (a full batch and a last, smaller one, normally)

    def __init__(self, num_classes: int, hparams: Optional[ComponentParams] = None, **overrides: Any):
        super().__init__(num_classes, hparams, **overrides)
        self.grid: Tuple[int, int] = tuple(self.hparams.grid) if self.hparams.grid else default_grid(self.hparams.m)
        self.composite_pass = ReplayedForward(
            amp=self.hparams.amp,
            graph=self.hparams.graph,
            max_graphs=self.MAX_GRAPHS,
            what="NS: the composite pass",
            hint="set weighting.graph=false to silence this",
        )
        self.diagnostics = NSDiagnostics(keep_indices=self.hparams.save_scores)

    @classmethod
    def display(cls, spec: dict) -> str:
        rho = float(spec.get("rho", 1.0))
        return "NS-WS" if rho > 0 else ("NS-LF" if rho < 0 else "NS")

    def scores(self, batch: WeightInput) -> torch.Tensor:
        """Each sample's NS score (1 for the samples left over after forming the groups)."""
        images, targets = batch.images, batch.targets
        size = images.shape[0]
        group_size = self.hparams.m
        scores = torch.ones(size, device=images.device)
        num_groups = size // group_size
        if num_groups == 0:
            return scores
        order = torch.randperm(size, device=images.device)
        groups = order[: num_groups * group_size].view(num_groups, group_size)
        logits = self.composite_pass(batch.model, make_composites(images, groups, self.grid))
        probs = torch.softmax(logits.float(), dim=1)
        own = probs.gather(1, targets[groups])  # [G, m]: each member's probability of its own label on its composite
        scores[groups.reshape(-1)] = ns_scores(own).reshape(-1)
        return scores

    def weights(self, batch: WeightInput) -> torch.Tensor:
        hp = self.hparams
        scores = self.scores(batch)
        weights = hp.sigma + hp.rho * scores
        clamped = weights < hp.floor
        self.diagnostics.add(scores, clamped, batch.indices)
        return torch.where(clamped, torch.full_like(weights, hp.floor), weights)

    def sync_epoch(self, gather: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().sync_epoch(gather)
        self.diagnostics.sync(gather)

    def add_to_report(
        self, report: WeightingReport, epoch: int, weights: torch.Tensor, targets: torch.Tensor, keep_samples: bool
    ) -> None:
        hp = self.hparams
        kept = {"sigma": hp.sigma, "rho": hp.rho, "m": hp.m} if keep_samples and hp.save_scores else None
        self.diagnostics.report(report, epoch, weights, targets, self.num_classes, kept)
