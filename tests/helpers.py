"""Tiny generated image sets for CPU tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CENTERS = [(4, 4), (4, 11), (11, 4), (11, 11)]
TARGET_STYLE = (2.2, 0.5, 0.35, 0.1)  # sigma, amplitude, background, noise of the target domain


def blob_image(rng, label: int, domain: str, size: int = 16) -> np.ndarray:
    """Class = which quadrant holds a bright blob. The target domain has lower contrast, a brighter
    background, a wider blob and more noise (a low-level shift of the kind BN adaptation and SHOT fix)."""
    cy, cx = CENTERS[label]
    cy += rng.integers(-2, 3)
    cx += rng.integers(-2, 3)
    yy, xx = np.mgrid[0:size, 0:size]
    if domain == "source":
        sigma, amp, bg, noise = 1.5, 0.9, 0.05, 0.05
    else:
        sigma, amp, bg, noise = TARGET_STYLE
    img = bg + amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
    # a distractor blob, dimmer, in another quadrant
    other = CENTERS[(label + 1 + rng.integers(0, 3)) % 4]
    img += 0.5 * amp * np.exp(-((yy - other[0]) ** 2 + (xx - other[1]) ** 2) / (2 * (sigma * 0.8) ** 2))
    img += noise * rng.standard_normal((size, size))
    rgb = np.stack([img, img * 0.9, img * 1.1], axis=-1)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def make_two_domain_set(root: Path, per_class: int = 40, seed: int = 0, num_classes: int = 4):
    """Write root/{source,target}/c<k>/<i>.png and lists root/lists/{source,target}.txt."""
    rng = np.random.default_rng(seed)
    (root / "lists").mkdir(parents=True, exist_ok=True)
    for domain in ("source", "target"):
        lines = []
        for k in range(num_classes):
            d = root / domain / f"c{k}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(blob_image(rng, k, domain)).save(d / f"{i:03d}.png")
                lines.append(f"{domain}/c{k}/{i:03d}.png {k}")
        (root / "lists" / f"{domain}.txt").write_text("\n".join(lines) + "\n")
    return root


def tiny_config_dict(root: Path, out: Path, **extra) -> dict:
    """A two-domain config on the generated set with the small CNN (source stage unless method given)."""
    cfg = {
        "name": "tiny",
        "benchmark": "tiny",
        "output_root": str(out),
        "seed": 0,
        "device": "cpu",
        "data": {"root": str(root), "lists_dir": str(root / "lists"), "source": "source", "target": "target",
                 "domains": ["source", "target"], "num_classes": 4, "transform": "tiny16",
                 "batch_size": 32, "test_batch_size": 64, "num_workers": 0},
        "model": {"backbone": "small_cnn", "pretrained": False, "bottleneck_dim": 32},
        "optim": {"epochs": 5, "lr": 0.01, "backbone_lr_mult": 1.0},
        "log": {"tensorboard": False, "progress": "none"},
    }
    for k, v in extra.items():
        node = cfg
        parts = k.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return cfg
