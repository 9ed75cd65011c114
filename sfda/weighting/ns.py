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

On CUDA the composite pass runs in mixed precision (``amp``) and is replayed as a CUDA graph (``graph``): one
capture per composite-batch shape, reading the live parameters and BatchNorm buffers (updated in place by
training), so each step costs one graph launch instead of hundreds of kernel launches. A model whose forward
cannot be captured falls back to the plain pass with a one-time warning.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..registry import WEIGHTERS
from .base import Weighter, WeightInput


def default_grid(m: int) -> Tuple[int, int]:
    """The most square R x C with R <= C: 2 -> 1x2, 4 -> 2x2, 8 -> 2x4, 16 -> 4x4."""
    r = int(math.isqrt(m))
    while m % r:
        r -= 1
    return r, m // r


def make_composites(images: torch.Tensor, groups: torch.Tensor, grid: Sequence[int], *,
                    direct: Optional[bool] = None) -> torch.Tensor:
    """images [B, C, H, W]; groups [G, m] batch indices, row-major over the grid -> composites [G, C, H, W]."""
    R, Cg = int(grid[0]), int(grid[1])
    G, m = groups.shape
    assert R * Cg == m, "grid must have m cells"
    B, ch, H, W = images.shape
    if direct is None:
        direct = H % R == 0 and W % Cg == 0
    if direct:
        tiles = images if (R, Cg) == (1, 1) else F.interpolate(images, size=(H // R, W // Cg), mode="bilinear", align_corners=False)
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


class _EvalMode:
    """Put every module in eval mode, restoring each module's own flag on exit."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.flags = [(m, m.training) for m in self.model.modules()]
        self.model.eval()

    def __exit__(self, *exc):
        for m, flag in self.flags:
            m.training = flag


MAX_GRAPHS = 4  # composite shapes captured per weighter (a full batch and a last, smaller one, normally)


@WEIGHTERS.register("ns")
class NaturalSelection(Weighter):
    """Natural Selection: w = sigma + rho * (group-relative composite score); rho +1 NS-WS, -1 NS-LF."""

    label = "NS"
    defaults = {
        "m": 4,               # group size
        "grid": [],           # [R, C] with R*C = m (default: 1x2, 2x2, 2x4, 4x4 ...)
        "sigma": 0.6,         # base value (paper, SFDA: 0.6)
        "rho": 1.0,           # +1 winner strengthening (WS), -1 loser focusing (LF), or any real value
        "floor": 0.0,         # weights below it are clamped to it (and counted)
        "reduction": "mean",  # mean(w l) as the paper, or normalized: sum(w l) / sum(w)
        "amp": True,          # bf16/fp16 autocast for the composite pass on CUDA
        "graph": True,        # replay the composite pass as a CUDA graph on CUDA (no effect on the CPU)
        "save_scores": True,  # keep the first and last epoch's scores in ns_scores.pt (for `sfda plot`)
    }

    def __init__(self, num_classes: int, **params):
        super().__init__(num_classes, **params)
        self.m = int(self.m)
        if self.m < 2:
            raise ValueError("weighting.m must be at least 2")
        self.grid = tuple(self.grid) if self.grid else default_grid(self.m)
        if len(self.grid) != 2 or self.grid[0] * self.grid[1] != self.m:
            from ..errors import ConfigError
            raise ConfigError(f"weighting.grid {list(self.grid)} does not have weighting.m={self.m} cells")
        self._clamped = 0
        self._seen = 0
        self._saved: Dict[str, dict] = {}
        self._graphs: Dict[tuple, object] = {}
        self._pool = None

    @classmethod
    def display(cls, spec: dict) -> str:
        rho = float(spec.get("rho", 1.0))
        return "NS-WS" if rho > 0 else ("NS-LF" if rho < 0 else "NS")

    def scores(self, batch: WeightInput) -> torch.Tensor:
        x, y = batch.images, batch.targets
        B = x.shape[0]
        s = torch.ones(B, device=x.device)
        G = B // self.m
        if G == 0:
            return s
        perm = torch.randperm(B, device=x.device)
        groups = perm[: G * self.m].view(G, self.m)
        comp = make_composites(x, groups, self.grid)
        logits = self._forward(batch.model, comp)
        p = torch.softmax(logits.float(), dim=1)
        q = p.gather(1, y[groups])  # [G, m]: each member's probability of its own label on its composite
        s[groups.reshape(-1)] = ns_scores(q).reshape(-1)
        return s

    # -- the composite pass -------------------------------------------------------------------------------
    def _autocast(self, device: torch.device, cache: bool = True):
        use_amp = self.amp and device.type == "cuda"
        dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype, enabled=use_amp, cache_enabled=cache)

    def _forward(self, model, comp: torch.Tensor) -> torch.Tensor:
        """Logits of the composites: eval mode, no gradient (the caller's ``no_grad``), mixed precision and a
        CUDA graph on CUDA."""
        if self.graph and comp.is_cuda and not torch.is_grad_enabled():
            key = (id(model), tuple(comp.shape), comp.dtype, comp.device)
            if key not in self._graphs:
                self._graphs[key] = self._capture(model, comp) if len(self._graphs) < MAX_GRAPHS else None
            captured = self._graphs[key]
            if captured is not None:
                static_in, static_out, graph = captured
                static_in.copy_(comp)
                graph.replay()
                return static_out
        with _EvalMode(model), self._autocast(comp.device):
            return model(comp)

    def _capture(self, model, comp: torch.Tensor):
        """(static input, static output, graph) for this composite shape, or None if the forward cannot be
        captured (the plain pass is used then)."""
        static_in = comp.clone()
        try:
            side = torch.cuda.Stream(comp.device)
            side.wait_stream(torch.cuda.current_stream(comp.device))
            with torch.cuda.stream(side), _EvalMode(model), self._autocast(comp.device, cache=False):
                for _ in range(2):  # warm-up outside the capture (cuDNN algorithm choice, allocator)
                    model(static_in)
            torch.cuda.current_stream(comp.device).wait_stream(side)
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            with _EvalMode(model), self._autocast(comp.device, cache=False), torch.cuda.graph(graph, pool=self._pool):
                static_out = model(static_in)
            return static_in, static_out, graph
        except Exception as e:  # e.g. a forward that synchronises with the host
            warnings.warn(f"NS: the composite pass could not be captured as a CUDA graph ({type(e).__name__}: {e}); "
                          "running it without (set weighting.graph=false to silence this)")
            return None

    def weights(self, batch: WeightInput) -> torch.Tensor:
        s = self.scores(batch)
        w = self.sigma + self.rho * s
        below = w < self.floor
        self._clamped = self._clamped + below.sum()   # a device tensor: no host sync per step
        self._seen += w.numel()
        self._epoch_scores.append(s)
        if self.save_scores:
            self._indices.append(batch.indices if batch.indices is not None else torch.full_like(s, -1, dtype=torch.long))
        return torch.where(below, torch.full_like(w, self.floor), w)

    # -- diagnostics ------------------------------------------------------------------------------------
    _indices: List[torch.Tensor]

    def reset_epoch(self):
        super().reset_epoch()
        self._indices = []
        self._clamped = self._seen = 0

    def extra_stats(self) -> Dict[str, float]:
        s, t = self.gathered("_epoch_scores"), self.gathered("_epoch_targets").long()
        out = {"clamped_fraction": int(self._clamped) / max(self._seen, 1), "score_std": s.std(unbiased=False).item() if s.numel() else 0.0}
        per_class = [s[t == k].mean().item() for k in range(self.num_classes) if (t == k).any()]
        if per_class:
            out["class_score_spread"] = max(per_class) - min(per_class)
        return out

    def epoch_end(self, epoch: int, epochs: int, run_dir: Optional[Path] = None, runlog=None) -> Dict[str, float]:
        if runlog is not None and self._epoch_scores:
            s, t = self.gathered("_epoch_scores"), self.gathered("_epoch_targets").long()
            runlog.histogram("ns/score", s, epoch + 1)
            runlog.histogram("ns/weight", self.gathered("_epoch_weights"), epoch + 1)
            runlog.scalars({f"class_{k:03d}": s[t == k].mean().item() for k in range(self.num_classes) if (t == k).any()},
                           epoch + 1, "ns_class_score/")
        if self.save_scores and run_dir is not None and self._epoch_scores and epoch in (0, epochs - 1):
            self._saved["first" if epoch == 0 else "last"] = {
                "epoch": epoch + 1, "indices": self.gathered("_indices").long(),
                "targets": self.gathered("_epoch_targets").long(),
                "scores": self.gathered("_epoch_scores"), "weights": self.gathered("_epoch_weights"),
                "sigma": self.sigma, "rho": self.rho, "m": self.m}
            from ..models.checkpoint import atomic_save
            atomic_save(self._saved, Path(run_dir) / "ns_scores.pt")
        return super().epoch_end(epoch, epochs, run_dir, runlog)

    def state_dict(self) -> dict:
        return {"saved": self._saved}

    def load_state_dict(self, state: dict) -> None:
        self._saved = state.get("saved", {})
