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
    labels: torch.Tensor  # [N] pseudo-labels
    centroids: torch.Tensor  # [K, D'] (rows of dead classes are zero)
    distances: torch.Tensor  # [N, K] cosine distance to each live centroid (inf for dead classes)


@torch.no_grad()
def shot_pseudo_labels(
    features: torch.Tensor, probs: torch.Tensor, *, threshold: int = 0, rounds: int = 2, distance: str = "cosine"
) -> Clustering:
    """Pseudo-labels [N] from eval-mode features [N, D] and predictions [N, K] (see the module docstring)."""
    points = features.float()
    if distance == "cosine":
        points = torch.cat([points, torch.ones(points.shape[0], 1, device=points.device, dtype=points.dtype)], dim=1)
        points = F.normalize(points, dim=1)
    elif distance != "euclidean":
        raise ValueError(f"distance must be 'cosine' or 'euclidean', got '{distance}'")
    num_classes = probs.shape[1]
    affinity = probs.float()
    predict = affinity.argmax(dim=1)
    distances = torch.empty(0)
    centroids = torch.empty(0)
    for _ in range(rounds):
        centroids = affinity.t() @ points / (1e-8 + affinity.sum(dim=0, keepdim=True).t())
        counts = torch.bincount(predict, minlength=num_classes)
        live = torch.nonzero(counts > threshold).flatten()
        if live.numel() == 0:  # threshold above every count: fall back to all predicted classes
            live = torch.nonzero(counts > 0).flatten()
        live_centroids = centroids[live]
        if distance == "cosine":
            live_distances = 1.0 - points @ F.normalize(live_centroids, dim=1).t()
        else:
            live_distances = torch.cdist(points, live_centroids)
        predict = live[live_distances.argmin(dim=1)]
        affinity = F.one_hot(predict, num_classes).float()
        distances = torch.full((points.shape[0], num_classes), float("inf"), device=points.device)
        distances[:, live] = live_distances
    return Clustering(predict, centroids, distances)
