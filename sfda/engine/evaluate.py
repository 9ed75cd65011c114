"""One inference pass over a dataset (features, logits, labels in dataset order) and accuracy metrics."""
from __future__ import annotations

from typing import Dict

import torch

from ..datatypes import Inference
from .progress import progress


@torch.no_grad()
def infer(model, loader, device, *, amp: bool = False, desc: str = "eval", show: str = "none") -> Inference:
    """Eval-mode pass; results are preallocated on the device and filled at the samples' indices."""
    was_training = model.training
    model.eval()
    n = len(loader.dataset)
    feats = logits = None
    labels = torch.empty(n, dtype=torch.long, device=device)
    use_amp = amp and torch.device(device).type == "cuda"
    for x, y, idx in progress(loader, desc=desc, mode=show):
        x = x.to(device, non_blocking=True)
        idx = idx.to(device)
        with torch.autocast(device_type=torch.device(device).type, enabled=use_amp):
            f, z = model(x, return_features=True)
        if feats is None:
            feats = torch.empty(n, f.shape[1], device=device)
            logits = torch.empty(n, z.shape[1], device=device)
        feats[idx] = f.float()
        logits[idx] = z.float()
        labels[idx] = y.to(device)
    model.train(was_training)
    return Inference(feats, logits, labels)


def classification_metrics(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Dict[str, object]:
    """Accuracy, per-class accuracy (None for classes without samples) and their mean, all in %."""
    pred, labels = pred.cpu(), labels.cpu()
    correct = (pred == labels).float()
    total = torch.bincount(labels, minlength=num_classes).float()
    hits = torch.bincount(labels, weights=correct, minlength=num_classes)
    per_class = [None if total[k] == 0 else round(100.0 * hits[k].item() / total[k].item(), 4) for k in range(num_classes)]
    present = [v for v in per_class if v is not None]
    return {
        "accuracy": 100.0 * correct.mean().item(),
        "mean_class_accuracy": sum(present) / max(len(present), 1),
        "per_class_accuracy": per_class,
    }
