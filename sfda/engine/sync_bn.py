"""Synchronised batch normalisation (``distributed.sync_bn``): in training mode every BatchNorm layer normalises
with the mean and variance of the global batch (all ranks' samples), so that N ranks of B/N samples compute
what one process of B samples computes; the running statistics then stay identical on every rank.

On CUDA this is PyTorch's :class:`torch.nn.SyncBatchNorm`. PyTorch's works on GPUs only, so on the CPU (gloo;
how the multi-process tests run) :class:`GlobalBatchNorm` does the same with two differentiable all-reduces
(the global mean, then the global variance around it). In evaluation mode, and with one process, both are
plain batch normalisation.
"""

from __future__ import annotations

from typing import Type

import torch
from torch import nn

from .. import parallel


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the global batch, for any input rank ([N, C], [N, C, L], [N, C, H, W], ...)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and parallel.world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0] + list(range(2, input.dim()))
        shape = [1, -1] + [1] * (input.dim() - 2)
        x = input.float()
        local = float(x.numel() // max(x.shape[1], 1))
        count_sum = parallel.all_reduce_sum(torch.cat([x.sum(dim=dims), x.new_tensor([local])]))
        count = count_sum[-1]
        mean = count_sum[:-1] / count
        centred = x - mean.view(shape)
        var = parallel.all_reduce_sum((centred * centred).sum(dim=dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                assert self.num_batches_tracked is not None
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                n = float(count)
                unbiased = var.detach() * (n / max(n - 1.0, 1.0))
                self.running_mean.mul_(1 - factor).add_(mean.detach().to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
        return out.to(input.dtype)


def convert(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm layer of ``module`` (in place below the top) by its synchronised version:
    :class:`torch.nn.SyncBatchNorm` on CUDA, :class:`GlobalBatchNorm` elsewhere. Parameters and buffers are
    the same tensors, so optimisers and saved states see no difference (the state-dict keys are unchanged)."""
    cls: Type[nn.modules.batchnorm._BatchNorm] = nn.SyncBatchNorm if device.type == "cuda" else GlobalBatchNorm
    return _convert(module, cls)


def _convert(module: nn.Module, cls: Type[nn.modules.batchnorm._BatchNorm]) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, cls):
        out = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.training = module.training
        if hasattr(module, "qconfig"):
            out.qconfig = module.qconfig
    for name, child in module.named_children():
        out.add_module(name, _convert(child, cls))
    return out
