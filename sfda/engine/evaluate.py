"""One inference pass over a dataset (features, logits, labels in dataset order) and accuracy metrics.

On several processes the loader is sharded (:class:`~sfda.samplers.sharded.ShardedSampler`, no padding): each
rank runs its share and the pass is gathered with the dataset indices, so that every rank ends with the same
tensors, holding every sample exactly once."""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, List, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader

from .. import parallel
from ..datatypes import Inference
from ..samplers.sharded import ShardedSampler
from .progress import progress


@torch.no_grad()
def infer(
    model: nn.Module,
    loader: DataLoader,
    device: Any,
    *,
    amp: bool = False,
    desc: str = "eval",
    show: str = "none",
    backbone: bool = False,
) -> Inference:
    """Eval-mode pass; results are preallocated on the device and filled at the samples' indices. ``backbone``:
    also keep the backbone's (``model.netF``'s) outputs, read with a forward hook during the same forward."""
    was_training = model.training
    model.eval()
    size = len(loader.dataset)  # type: ignore[arg-type]
    features: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    labels = torch.empty(size, dtype=torch.long, device=device)
    backbone_out: Optional[torch.Tensor] = None
    use_amp = amp and torch.device(device).type == "cuda"
    sharded = isinstance(loader.sampler, ShardedSampler)
    seen = []
    with _netF_outputs(model, backbone) as captured:
        for images, batch_labels, indices in progress(loader, desc=desc, mode=show):
            images = images.to(device, non_blocking=True)
            indices = indices.to(device)
            with torch.autocast(device_type=torch.device(device).type, enabled=use_amp):
                batch_features, batch_logits = model(images, return_features=True)
            if features is None or logits is None:
                features = torch.empty(size, batch_features.shape[1], device=device)
                logits = torch.empty(size, batch_logits.shape[1], device=device)
            features[indices] = batch_features.float()
            logits[indices] = batch_logits.float()
            labels[indices] = batch_labels.to(device)
            if backbone:
                out = captured.pop().flatten(1)
                if backbone_out is None:
                    backbone_out = torch.empty(size, out.shape[1], device=device)
                backbone_out[indices] = out.float()
            if sharded:
                seen.append(indices)
    model.train(was_training)
    assert features is not None and logits is not None, "inference over an empty dataset"
    if sharded:
        return _gather(features, logits, labels, torch.cat(seen), size, backbone_out)
    return Inference(features, logits, labels, backbone_out)


@contextlib.contextmanager
def _netF_outputs(model: nn.Module, enabled: bool) -> Iterator[List[torch.Tensor]]:
    """A list that receives every output of ``model.netF`` while the context is open (nothing unless enabled)."""
    captured: List[torch.Tensor] = []
    if not enabled:
        yield captured
        return
    backbone: Any = model.netF
    hook = backbone.register_forward_hook(lambda _module, _inputs, out: captured.append(out))
    try:
        yield captured
    finally:
        hook.remove()


def _gather(
    features: torch.Tensor,
    logits: torch.Tensor,
    labels: torch.Tensor,
    mine: torch.Tensor,
    size: int,
    backbone: Optional[torch.Tensor] = None,
) -> Inference:
    """Every rank's rows of a sharded pass, in dataset order; each index must come exactly once."""
    extra = () if backbone is None else (backbone[mine],)
    rows, feats, outs, labs, *backbone_rows = parallel.gather_varlen(
        mine, features[mine], logits[mine], labels[mine], *extra
    )
    counts = torch.bincount(rows, minlength=size)
    if counts.numel() != size or bool((counts != 1).any()):
        raise RuntimeError(
            f"the sharded evaluation pass covered {int((counts > 0).sum())} of {size} samples "
            f"({int((counts > 1).sum())} more than once)"
        )
    features[rows], logits[rows], labels[rows] = feats, outs, labs
    if backbone is not None:
        backbone[rows] = backbone_rows[0]
    return Inference(features, logits, labels, backbone)


def classification_metrics(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Dict[str, Any]:
    """Accuracy, per-class accuracy (None for classes without samples) and their mean, all in %."""
    pred, labels = pred.cpu(), labels.cpu()
    correct = (pred == labels).float()
    total = torch.bincount(labels, minlength=num_classes).float()
    hits = torch.bincount(labels, weights=correct, minlength=num_classes)
    per_class = [
        None if total[k] == 0 else round(100.0 * hits[k].item() / total[k].item(), 4) for k in range(num_classes)
    ]
    present = [v for v in per_class if v is not None]
    return {
        "accuracy": 100.0 * correct.mean().item(),
        "mean_class_accuracy": sum(present) / max(len(present), 1),
        "per_class_accuracy": per_class,
    }
