"""A no-grad, eval-mode forward pass of a module, replayed as a CUDA graph.

:class:`ReplayedForward` runs ``module(inputs)`` without gradient, with every submodule in eval mode (BatchNorm
uses and never updates its running statistics; each submodule's own train/eval flag is restored afterwards)
and, on CUDA, in mixed precision (``amp``). On CUDA with ``graph`` it captures the pass once per input shape
and replays it: the graph reads the live parameters and buffers (which training updates in place), so each
call costs one graph launch instead of one launch per kernel. At most ``max_graphs`` shapes are captured
(later shapes run the plain pass). A module whose forward cannot be captured (one that synchronises with the
host, say) runs the plain pass, after a one-time warning.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

Captured = Tuple[torch.Tensor, torch.Tensor, "torch.cuda.CUDAGraph"]  # static input, static output, graph


class EvalMode:
    """Every submodule in eval mode inside the block; each one's own flag restored on exit."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.flags: List[Tuple[nn.Module, bool]] = []

    def __enter__(self) -> nn.Module:
        self.flags = [(sub, sub.training) for sub in self.module.modules()]
        self.module.eval()
        return self.module

    def __exit__(self, *exc: object) -> None:
        for sub, flag in self.flags:
            sub.training = flag


class ReplayedForward:
    """``forward(module, inputs)``: the module's eval-mode output without gradient, replayed as a CUDA graph
    on CUDA. ``what`` names the pass in the fallback warning and ``hint`` tells how to turn the graph off."""

    def __init__(
        self,
        *,
        amp: bool = True,
        graph: bool = True,
        max_graphs: int = 4,
        what: str = "the forward pass",
        hint: str = "",
    ):
        self.amp = amp
        self.graph = graph
        self.max_graphs = max_graphs
        self.what = what
        self.hint = hint
        self.graphs: Dict[tuple, Optional[Captured]] = {}  # (module, shape, dtype, device) -> capture or None
        self._pool: Optional[Any] = None  # the graphs' shared memory pool
        self._warned = False

    def autocast(self, device: torch.device, cache: bool = True) -> torch.autocast:
        use_amp = self.amp and device.type == "cuda"
        dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype, enabled=use_amp, cache_enabled=cache)

    @torch.no_grad()
    def __call__(self, module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        if self.graph and inputs.is_cuda:
            key = (id(module), tuple(inputs.shape), inputs.dtype, inputs.device)
            if key not in self.graphs:
                self.graphs[key] = self._capture(module, inputs) if len(self.graphs) < self.max_graphs else None
            captured = self.graphs[key]
            if captured is not None:
                static_in, static_out, graph = captured
                static_in.copy_(inputs)
                graph.replay()
                return static_out
        with EvalMode(module), self.autocast(inputs.device):
            return module(inputs)

    def _capture(self, module: nn.Module, inputs: torch.Tensor) -> Optional[Captured]:
        """(static input, static output, graph) for this input shape, or None if the forward cannot be captured."""
        static_in = inputs.clone()
        try:
            side = torch.cuda.Stream(inputs.device)
            side.wait_stream(torch.cuda.current_stream(inputs.device))
            with torch.cuda.stream(side), EvalMode(module), self.autocast(inputs.device, cache=False):
                for _ in range(2):  # warm-up outside the capture (cuDNN algorithm choice, allocator)
                    module(static_in)
            torch.cuda.current_stream(inputs.device).wait_stream(side)
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            with EvalMode(module), self.autocast(inputs.device, cache=False), torch.cuda.graph(graph, pool=self._pool):
                static_out = module(static_in)
            return static_in, static_out, graph
        except Exception as error:  # e.g. a forward that synchronises with the host
            if self._warned:
                return None
            self._warned = True
            hint = f" ({self.hint})" if self.hint else ""
            warnings.warn(
                f"{self.what} could not be captured as a CUDA graph ({type(error).__name__}: {error}); "
                f"running it without{hint}",
                stacklevel=2,
            )
            return None
