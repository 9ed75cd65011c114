"""SHOT's clustering pseudo-labels, as corrected in 2022, on torch tensors (on the model's device).

1. Append a constant 1 to every feature (it mirrors the classifier bias) and L2-normalise the rows.
2. Centroids weighted by the softmax predictions; assign each sample to the nearest centroid (cosine).
3. One hard k-means round: centroids of the assigned clusters, reassign.
In every round the set of live classes (count > threshold under the current assignment) is recomputed, so an
empty cluster never has a zero centroid that could capture every sample (the pre-2022 bug).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Clustering:
    labels: torch.Tensor       # [N] pseudo-labels
    centroids: torch.Tensor    # [K, D'] (rows of dead classes are zero)
    distances: torch.Tensor    # [N, K] cosine distance to each live centroid (inf for dead classes)


@torch.no_grad()
def shot_pseudo_labels(features: torch.Tensor, probs: torch.Tensor, *, threshold: int = 0, rounds: int = 2,
                       distance: str = "cosine") -> Clustering:
    f = features.float()
    if distance == "cosine":
        f = torch.cat([f, torch.ones(f.shape[0], 1, device=f.device, dtype=f.dtype)], dim=1)
        f = F.normalize(f, dim=1)
    elif distance != "euclidean":
        raise ValueError(f"distance must be 'cosine' or 'euclidean', got '{distance}'")
    K = probs.shape[1]
    aff = probs.float()
    predict = aff.argmax(dim=1)
    dist = None
    centroids = None
    for _ in range(rounds):
        centroids = aff.t() @ f / (1e-8 + aff.sum(dim=0, keepdim=True).t())
        counts = torch.bincount(predict, minlength=K)
        live = torch.nonzero(counts > threshold).flatten()
        if live.numel() == 0:  # threshold above every count: fall back to all predicted classes
            live = torch.nonzero(counts > 0).flatten()
        c = centroids[live]
        if distance == "cosine":
            d = 1.0 - f @ F.normalize(c, dim=1).t()
        else:
            d = torch.cdist(f, c)
        predict = live[d.argmin(dim=1)]
        aff = F.one_hot(predict, K).float()
        dist = torch.full((f.shape[0], K), float("inf"), device=f.device)
        dist[:, live] = d
    return Clustering(predict, centroids, dist)
