"""Shared fixtures and helpers of the test suite: tiny generated image sets and configs for CPU runs.

Tests use them through fixtures (``two_domains``, ``tiny_config``, ``make_two_domain_set``, ``one_thread``),
never by importing another test file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from sfda.data.transforms import TransformSpec
from sfda.registry import TRANSFORMS

torch.set_num_threads(2)

CENTERS = [(4, 4), (4, 11), (11, 4), (11, 11)]
TARGET_STYLE = (2.2, 0.5, 0.35, 0.1)  # sigma, amplitude, background, noise of the target domain


if "tiny16" not in TRANSFORMS:

    @TRANSFORMS.register("tiny16")
    def tiny16(**_: Any) -> TransformSpec:
        """16x16 RGB test images, scaled to [-1, 1]; flips in training."""
        norm = T.Normalize((0.5,) * 3, (0.5,) * 3)
        return TransformSpec(
            "RGB", T.Resize((16, 16)), T.Compose([T.ToTensor(), norm]), T.Compose([T.ToTensor(), norm]), "tiny16"
        )


# -- helpers (plain functions; tests get them through the fixtures below) -----------------------------------
def blob_image(rng: np.random.Generator, label: int, domain: str, size: int = 16) -> np.ndarray:
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
    img = bg + amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    # a distractor blob, dimmer, in another quadrant
    other = CENTERS[(label + 1 + rng.integers(0, 3)) % 4]
    img += 0.5 * amp * np.exp(-((yy - other[0]) ** 2 + (xx - other[1]) ** 2) / (2 * (sigma * 0.8) ** 2))
    img += noise * rng.standard_normal((size, size))
    rgb = np.stack([img, img * 0.9, img * 1.1], axis=-1)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def make_two_domain_set(root: Path, per_class: int = 40, seed: int = 0, num_classes: int = 4) -> Path:
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


def tiny_config_dict(root: Path, out: Path, **extra: Any) -> Dict[str, Any]:
    """A two-domain config on the generated set with the small CNN (source stage unless method given);
    ``extra`` sets dotted keys, e.g. ``**{"method.name": "shot"}``."""
    cfg: Dict[str, Any] = {
        "name": "tiny",
        "benchmark": "tiny",
        "output_root": str(out),
        "seed": 0,
        "device": "cpu",
        "data": {
            "root": str(root),
            "lists_dir": str(root / "lists"),
            "source": "source",
            "target": "target",
            "domains": ["source", "target"],
            "num_classes": 4,
            "transform": "tiny16",
            "batch_size": 32,
            "test_batch_size": 64,
            "num_workers": 0,
        },
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


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def one_thread():
    """For a module of tiny models: they run far faster on one thread (two threads on a busy two-core machine
    spin-wait). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def two_domains(tmp_path_factory) -> Path:
    """The generated two-domain set (4 classes x 40 images per domain), made once per session."""
    return make_two_domain_set(tmp_path_factory.mktemp("twodomains"))


@pytest.fixture(name="make_two_domain_set", scope="session")
def make_two_domain_set_fixture() -> Callable[..., Path]:
    """:func:`make_two_domain_set`, for tests that need their own set (other sizes, seeds or class counts)."""
    return make_two_domain_set


@pytest.fixture(scope="session")
def tiny_config() -> Callable[..., Dict[str, Any]]:
    """:func:`tiny_config_dict`: ``tiny_config(root, out, **{"dotted.key": value})`` -> a config dict."""
    return tiny_config_dict


def _without_times(metrics: Dict[str, Any]) -> Dict[str, Any]:
    out = {k: v for k, v in metrics.items() if k not in ("wall_time_s", "_dir")}  # _dir: the run's own folder
    out["history"] = [{k: v for k, v in rec.items() if k != "time_s"} for rec in metrics["history"]]
    return out


def assert_same_run(
    full_cfg, resumed_cfg, full: Dict[str, Any], resumed: Dict[str, Any], stage: str = "target"
) -> None:
    """A resumed run equals the uninterrupted one: its metrics and per-epoch history (times aside) and every
    weight of its saved model."""
    from sfda.engine.runner import run_dir

    assert _without_times(resumed) == _without_times(full)
    assert (full["_dir"], resumed["_dir"]) == (str(run_dir(full_cfg)), str(run_dir(resumed_cfg)))
    for part in ("F", "B", "C"):
        a = torch.load(run_dir(full_cfg) / f"{stage}_{part}.pt")
        b = torch.load(run_dir(resumed_cfg) / f"{stage}_{part}.pt")
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (part, k)


@pytest.fixture(scope="session")
def same_run() -> Callable[..., None]:
    """:func:`assert_same_run`: ``same_run(full_cfg, resumed_cfg, full_metrics, resumed_metrics, stage="target")``."""
    return assert_same_run


@pytest.fixture(scope="module")
def tiny_source_dir(two_domains, tiny_config, tmp_path_factory) -> Path:
    """A tiny source model trained once per test module on the generated two-domain set; its run folder."""
    from sfda.config import config_from_dict
    from sfda.engine.runner import run_dir, run_stage

    cfg = config_from_dict(
        tiny_config(
            two_domains, tmp_path_factory.mktemp("tiny_source"), **{"name": "tiny/source", "method.name": "source"}
        )
    )
    run_stage(cfg)
    return run_dir(cfg)
